"""The scheduler's small-array shortcuts equal the numpy operations they stand for: 1-D
reductions in Python (`top`, `total`) on either side of their size limit, column gathers by
`take` or indexing (`columns`), the whole table handed
out when every expert is active (`rows_of`), and the kept reduceat segment starts (`schedgreedy.segments`)."""

from __future__ import annotations

import numpy as np
import pytest

from fsedp_compiler.fsedp import schedgreedy, schedtables, scheduler
from fsedp_compiler.fsedp.schedtables import columns, rows_of, top, total


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint64])
def test_top_and_total_equal_numpy(dtype: type) -> None:
    rng = np.random.default_rng(17)
    limit = schedtables.PY_REDUCE_MAX
    for size in [1, 2, 7, 8, limit - 1, limit, limit + 1, 3 * limit]:
        for _ in range(20):
            low = 0 if dtype == np.uint64 else -(2**30)
            a = rng.integers(low, 2**30, size=size).astype(dtype)
            for view in (a, a[::2] if size > 1 else a):  # strided views too
                got_top, got_total = top(view), total(view)
                assert got_top == int(np.maximum.reduce(view)) and type(got_top) is int
                assert got_total == int(np.add.reduce(view)) and type(got_total) is int


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint32])
def test_umax_in_python_equals_the_unsigned_view(dtype: type) -> None:
    """`scheduler._umax` (the routing's range check) in Python for few signed entries: the
    largest entry viewed as unsigned, as numpy computes it."""
    rng = np.random.default_rng(11)
    info = np.iinfo(dtype)
    for size in [1, 2, 16, schedtables.PY_REDUCE_MAX, schedtables.PY_REDUCE_MAX + 1, 200]:
        for negatives in (0.0, 0.1, 1.0):
            a = rng.integers(0, min(info.max, 300), size=size).astype(dtype)
            if info.min < 0:
                a[rng.random(size) < negatives] = rng.integers(info.min, 0, size=size).astype(dtype)[0]
            unsigned = a.view(np.dtype(f"u{a.dtype.itemsize}"))
            got = scheduler._umax(a)
            assert got == int(unsigned.max()) and type(got) is int


def test_rows_of_equals_fancy_indexing() -> None:
    rng = np.random.default_rng(3)
    table = rng.integers(0, 1000, size=(9, 5))
    for count in range(10):
        active = np.sort(rng.choice(9, size=count, replace=False))
        np.testing.assert_array_equal(rows_of(table, active), table[active])
    assert rows_of(table, np.arange(9)) is table


@pytest.mark.parametrize("n,count,width,offsets", [(1, 1, 6, (0, 1, 2, 4)), (8, 8, 8, (0, 1, 2, 4, 6)),
                                                   (16, 92, 6, range(6)), (128, 257, 8, range(8))])
def test_segments_equal_the_built_starts(n: int, count: int, width: int, offsets) -> None:
    want = np.add.outer(np.arange(0, width * n * count, width * n), tuple(o * n for o in offsets)).ravel()
    got = schedgreedy.segments(n, count, width, offsets)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == want.dtype and not got.flags.writeable


def test_columns_equal_indexing() -> None:
    rng = np.random.default_rng(5)
    for rows, cols, width in [(8, 8, 32), (16, 16, 64), (92, 16, 64), (257, 128, 512)]:
        a = rng.random((rows, cols)) < 0.5
        index = rng.integers(0, cols, size=width)
        np.testing.assert_array_equal(columns(a, index), a[:, index])
