"""An asyncio server whose handler calls time.sleep: every request stalls the whole loop,
clients included. Expected: event_loop_blocked, naming `handle`."""
from _asyncio_server import run

run(blocking=True)
