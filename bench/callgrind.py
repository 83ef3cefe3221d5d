"""Counting the bot's instructions with valgrind's callgrind, for a figure that does not move with the noise.

`perf stat -e instructions` answers `<not supported>` on this machine (no hardware counters in the VM), so
the bot runs under `valgrind --tool=callgrind --instr-atstart=no`: start-up runs uninstrumented (about 5x
slower than native rather than 50x), then `callgrind_control` switches instrumentation on and zeroes the
counters just before the measured burst, and dumps them just after it. Only the burst is counted, every
thread of the process included.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

VALGRIND = "valgrind"
CONTROL = "callgrind_control"


def available() -> str | None:
    """None when valgrind and callgrind_control are installed, else what is missing."""
    missing = [tool for tool in (VALGRIND, CONTROL) if shutil.which(tool) is None]
    return ", ".join(missing) + " not found" if missing else None


def wrapper(workdir: str) -> list[str]:
    out = Path(workdir) / "callgrind.out"
    return [
        VALGRIND,
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}",
        f"--log-file={workdir}/valgrind.log",
    ]


async def control(pid: int, *args: str, limit: float = 120.0) -> None:
    process = await asyncio.create_subprocess_exec(
        CONTROL,
        *args,
        str(pid),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), limit)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise RuntimeError(f"{CONTROL} {' '.join(args)} did not answer within {limit:.0f} s") from None
    if process.returncode != 0 or b"OK" not in output:
        raise RuntimeError(f"{CONTROL} {' '.join(args)}: {output.decode(errors='replace').strip()}")


async def start_counting(pid: int) -> None:
    await control(pid, "--instr=on")
    await control(pid, "--zero")


async def stop_counting(pid: int, workdir: str) -> int:
    """Dump the counters and return the instructions counted since `start_counting`."""
    before = _dumps(workdir)
    await control(pid, "--dump=bench")
    await control(pid, "--instr=off")
    dump = _newest(_dumps(workdir) - before)
    if keep := os.environ.get("BENCH_CALLGRIND_KEEP"):
        _keep(dump, Path(keep), pid)
    return total_instructions(dump.read_text(errors="replace"))


def _keep(dump: Path, folder: Path, pid: int) -> None:
    """A copy of the dump in `folder`, for `callgrind_annotate` (the run's own folder goes with the run)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(dump, folder / f"callgrind.out.{pid}.{int(time.time())}")


def _dumps(workdir: str) -> set[Path]:
    return set(Path(workdir).glob("callgrind.out.*"))


def _newest(paths: set[Path]) -> Path:
    if not paths:
        raise RuntimeError("callgrind wrote no dump")
    return max(paths, key=lambda p: p.stat().st_mtime)


def total_instructions(dump: str) -> int:
    """The `totals:` (or `summary:`) line of a callgrind dump: instructions executed (event Ir)."""
    for key in ("totals:", "summary:"):
        for line in dump.splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    raise RuntimeError("no totals in the callgrind dump")
