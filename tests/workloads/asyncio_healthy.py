"""The same server with `await asyncio.sleep`: the loop waits for events nearly all the time.
Expected: io_bound, the loop reported healthy."""
from _asyncio_server import run

run(blocking=False)
