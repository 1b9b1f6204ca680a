"""A writer under concurrent load, for the crash drill: prints each acknowledged write.

Usage: python tests/_crash_writer.py STORE RUN THREADS
Each line ``ACK <product> <name> <sha256> <log index>`` is printed (and flushed) only after
``Store.put`` returned, i.e. after the write was acknowledged as durable.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from pathlib import Path

from depository.store import Store

PRODUCTS = ("ai-assistant", "ai-avatar", "gurukul", "enforcement")


def main() -> None:
    path, run, threads = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    store = Store.open(path)
    out = threading.Lock()
    print("READY", flush=True)

    def worker(t: int) -> None:
        i = 0
        while True:
            product = PRODUCTS[(t + i) % 4]
            name = f"{run}/{t}/{i}"
            # Every seventh artifact is large enough to be a blob file.
            size = 70_000 if i % 7 == 0 else 64
            data = hashlib.sha256(name.encode()).digest() * (size // 32)
            r = store.put(product, name, data, metadata={"run": run, "i": i})
            with out:
                sys.stdout.write(f"ACK {product} {name} {r.sha256} {r.log_index}\n")
                sys.stdout.flush()
            i += 1

    for t in range(threads):
        threading.Thread(target=worker, args=(t,), daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
