"""`map_in_processes`: results in the inputs' order, from other processes when given jobs."""

from __future__ import annotations

import os

from fraudstream_cli.processes import map_in_processes


def tagged(item: int, offset: int) -> tuple[int, int]:
    return item + offset, os.getpid()


def test_results_come_in_order_from_worker_processes_only_when_given_jobs() -> None:
    here = map_in_processes(tagged, [1, 2, 3], 10)
    assert here == [(11, os.getpid()), (12, os.getpid()), (13, os.getpid())]
    spread = map_in_processes(tagged, [1, 2, 3], 10, jobs=2)
    assert [value for value, _ in spread] == [11, 12, 13]
    assert os.getpid() not in {pid for _, pid in spread}
    assert map_in_processes(tagged, [1], 10, jobs=2) == [(11, os.getpid())]
