"""An asyncio service that renders JSON responses off the event loop with asyncio.to_thread:
the executor's threads take turns on the GIL, and the loop waits for it between them.
expect: mixed | gil_contention
"""
import asyncio
import json
import os
import time

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "4"))


def render(n):
    items = [{"id": i, "name": "item-%d" % i, "price": i * 0.5} for i in range(n)]
    return json.dumps({"items": items})


async def handle(request_id):
    body = await asyncio.to_thread(render, 3000)
    return request_id, len(body)


async def main():
    end = time.time() + RUN_SECONDS
    served = 0
    while time.time() < end:
        responses = await asyncio.gather(*(handle(i) for i in range(8)))
        served += len(responses)
    print("served", served)


if __name__ == "__main__":
    asyncio.run(main())
