"""Data movement and code: push, pull, dict access, scatter, gather, map, execute, run, clear."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from corral.client import AsyncMapResult, AsyncResult, Client, CompositeError, RemoteError, interactive

pytestmark = pytest.mark.timeout(30)


def test_push_pull_and_dict_access(rc: Client, cluster) -> None:
    dv = rc[:]
    assert dv.push({"a": 1, "b": [1, 2]}, block=True) == [None, None, None]
    assert cluster.engines[2].namespace["b"] == [1, 2]
    assert dv.pull("a", block=True) == [1, 1, 1]
    assert dv.pull(["a", "b"], block=True) == [[1, [1, 2]]] * 3
    assert dv.pull(("a",), block=True) == [[1]] * 3
    dv["c"] = "x"  # update with the view's flags: non-blocking, but ordered before the pull
    assert dv["c"] == ["x", "x", "x"]
    assert dv.get(["a", "c"]) == [[1, "x"]] * 3
    ar = dv.update({"d": 4})
    assert isinstance(ar, AsyncResult)
    ar.get(10)
    e0 = rc[0]
    e0.push({"only": 0}, block=True)
    assert e0["only"] == 0
    with pytest.raises(RemoteError, match="NameError"):
        rc[1].pull("only", block=True)
    with pytest.raises(CompositeError):
        dv.pull("only", block=True)
    with pytest.raises(TypeError, match="dict"):
        dv.push([("a", 1)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="names"):
        dv.pull(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        dv.pull(["a", 3])  # type: ignore[list-item]


def test_push_and_pull_numpy_without_copies(rc: Client, cluster) -> None:
    np = pytest.importorskip("numpy")
    a = np.arange(100_000, dtype="f8").reshape(1000, 100)
    rc[0].push({"a": a}, block=True)
    remote = cluster.engines[0].namespace["a"]
    assert not remote.flags.writeable  # a view of the received frame: not copied
    back = rc[0].pull("a", block=True)
    assert back.shape == (1000, 100)
    assert (back == a).all()
    assert not back.flags.writeable


def test_scatter_and_gather_lists(rc: Client, cluster) -> None:
    dv = rc[:]
    assert dv.scatter("x", list(range(10)), block=True) is None
    assert [cluster.engines[i].namespace["x"] for i in range(3)] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert dv.gather("x", block=True) == list(range(10))
    amr = dv.gather("x")
    assert isinstance(amr, AsyncMapResult)
    assert list(amr) == list(range(10))
    assert amr.get(10) == list(range(10))
    dv.scatter("t", (1, 2, 3, 4), block=True)
    assert cluster.engines[0].namespace["t"] == (1, 2)
    assert dv.gather("t", block=True) == [1, 2, 3, 4]
    dv.scatter("s", "abcdefg", block=True)
    assert dv.gather("s", block=True) == "abcdefg"
    dv.scatter("r", range(5), block=True)  # any iterable is listed first
    assert dv.gather("r", block=True) == [0, 1, 2, 3, 4]
    ar = dv.scatter("y", [1, 2])
    assert isinstance(ar, AsyncResult)
    ar.get(10)
    assert [cluster.engines[i].namespace["y"] for i in range(3)] == [[1], [2], []]


def test_scatter_flatten(rc: Client, cluster) -> None:
    dv = rc[:]
    dv.scatter("z", [10, 20, 30], flatten=True, block=True)
    assert [cluster.engines[i].namespace["z"] for i in range(3)] == [10, 20, 30]
    assert dv.gather("z", block=True) == [10, 20, 30]
    dv.scatter("w", [10, 20, 30, 40], flatten=True, block=True)
    assert [cluster.engines[i].namespace["w"] for i in range(3)] == [[10, 20], 30, 40]
    assert dv.gather("w", block=True) == [10, 20, 30, 40]


def test_scatter_and_gather_arrays_by_rows(rc: Client, cluster) -> None:
    np = pytest.importorskip("numpy")
    dv = rc[:]
    a = np.arange(20).reshape(10, 2)
    dv.scatter("a", a, block=True)
    assert [cluster.engines[i].namespace["a"].shape for i in range(3)] == [(4, 2), (3, 2), (3, 2)]
    back = dv.gather("a", block=True)
    assert isinstance(back, np.ndarray)
    assert (back == a).all()
    v = np.arange(3.0)
    dv.scatter("v", v, flatten=True, block=True)
    assert cluster.engines[1].namespace["v"] == 1.0
    assert list(dv.gather("v", block=True)) == [0.0, 1.0, 2.0]
    dv.scatter("u", np.arange(4.0), flatten=True, block=True)  # blocks [0, 1], 2.0, 3.0
    joined = dv.gather("u", block=True)
    assert isinstance(joined, np.ndarray)
    assert list(joined) == [0.0, 1.0, 2.0, 3.0]
    # every block flattened to one row: gather cannot know, and concatenates the rows
    dv.scatter("m", np.arange(12).reshape(3, 4), flatten=True, block=True)
    assert cluster.engines[2].namespace["m"].shape == (4,)
    assert (dv.gather("m", block=True) == np.arange(12)).all()
    with pytest.raises(TypeError, match="0-d"):
        dv.scatter("bad", np.array(1.0))


def test_scatter_gather_errors(rc: Client) -> None:
    dv = rc[:]
    with pytest.raises(ValueError, match="dist='b'"):
        dv.scatter("x", [1], dist="r")
    with pytest.raises(ValueError, match="dist='b'"):
        dv.gather("x", dist="r")
    with pytest.raises(TypeError, match="key"):
        dv.scatter(1, [1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sequence"):
        dv.scatter("x", 5)
    with pytest.raises(CompositeError):
        dv.gather("never-pushed", block=True)


def test_map_keeps_order_one_block_per_engine(rc: Client, cluster) -> None:
    dv = rc[:]
    assert dv.map_sync(lambda x: x * x, range(10)) == [x * x for x in range(10)]
    assert dv.map_sync(pow, [1, 2, 3, 4], [2, 2, 2, 2]) == [1, 4, 9, 16]
    assert dv.map_sync(abs, []) == []
    assert dv.map_sync(abs, [-1]) == [1]  # fewer items than engines: only one block sent
    amr = dv.map_async(str, range(7))
    assert isinstance(amr, AsyncMapResult)
    assert len(amr) == 3
    assert list(amr) == [str(i) for i in range(7)]
    assert amr.get(10) == [str(i) for i in range(7)]
    assert [m.engine_id for m in amr.metadata] == [0, 1, 2]
    assert isinstance(dv.map(abs, [1, 2]), AsyncMapResult)
    dv.block = True
    assert dv.map(abs, [-1, -2]) == [1, 2]
    assert rc[1].map_sync(abs, [-1, -2, -3]) == [1, 2, 3]
    with pytest.raises(ValueError, match="differ in length"):
        dv.map(pow, [1, 2], [1])
    with pytest.raises(ValueError, match="at least one"):
        dv.map(abs)


def test_map_failures(rc: Client) -> None:
    dv = rc[:]
    amr = dv.map_async(lambda x: 1 / x, [1, 2, 0, 4, 5])
    with pytest.raises(CompositeError) as caught:
        amr.get(10)
    assert [e.engine_id for e in caught.value.elist] == [1]
    assert "elements 2-3 of 5 failed" in str(caught.value)  # engine 1's block: [2, 4)
    assert sorted(amr.failed_elements) == [2, 3]
    it = iter(amr)
    assert [next(it), next(it)] == [1.0, 0.5]
    with pytest.raises(RemoteError, match="ZeroDivisionError"):
        next(it)


def test_map_over_array_rows(rc: Client) -> None:
    np = pytest.importorskip("numpy")
    dv = rc[:]
    assert dv.map_sync(lambda row: int(row.sum()), np.arange(12).reshape(6, 2)) == [1, 5, 9, 13, 17, 21]


def test_execute_returns_the_last_expression(rc: Client, cluster) -> None:
    dv = rc[:]
    ar = dv.execute("a = 5\na * 2")
    assert isinstance(ar, AsyncResult)
    assert ar.get(10) == [10, 10, 10]
    md = ar.metadata[0]
    assert md.execute_result["data"]["text/plain"] == "10"
    assert md.pyout is md.execute_result
    assert md.execution_count == 1
    done = dv.execute("b = a + 1", block=True)
    assert done.ready()
    assert done.get() == [None, None, None]
    assert dv.pull("b", block=True) == [6, 6, 6]
    assert rc[0].execute("print('hi'); b", block=True).get() == 6
    assert rc[0].execute("print('hi'); b", block=True).stdout == "hi\n"
    loud = rc[0].execute("b", silent=False, block=True)
    assert loud.get() == 6
    with pytest.raises(RemoteError, match="NameError"):
        rc[1].execute("undefined_name", block=True)
    with pytest.raises(CompositeError):
        dv.execute("1/0", block=True)
    with pytest.raises(RemoteError, match="SyntaxError"):
        rc[0].execute("def (", block=True)
    with pytest.raises(TypeError):
        dv.execute(b"1")  # type: ignore[arg-type]


def test_run_a_file(rc: Client, tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text("def f(x):\n    return x + 100\n\nanswer = f(1)\n    ")
    rc[:].run(script, block=True)
    assert rc[:].pull("answer", block=True) == [101, 101, 101]
    ar = rc[0].run(str(script))
    ar.get(10)
    with pytest.raises(FileNotFoundError):
        rc[:].run(tmp_path / "missing.py")


def test_clear(rc: Client, cluster) -> None:
    dv = rc[:]
    dv.push({"a": 1}, block=True)
    assert rc[0].clear(block=True) is None
    with pytest.raises(RemoteError, match="NameError"):
        rc[0].pull("a", block=True)
    assert rc[1].pull("a", block=True) == 1
    ar = dv.clear()
    assert isinstance(ar, AsyncResult)
    ar.get(10)
    assert all("a" not in e.namespace for e in cluster.engines.values())


def test_sync_imports(rc: Client, cluster, capsys: pytest.CaptureFixture[str]) -> None:
    dv = rc[:]
    with dv.sync_imports():
        import json
        import os.path
        from collections import OrderedDict, deque  # noqa: F401
    assert json.dumps(1) == "1"
    assert os.path.sep
    out = capsys.readouterr().out
    assert "importing json on engine(s)" in out
    assert "importing OrderedDict, deque from collections on engine(s)" in out
    ns = cluster.engines[0].namespace
    assert ns["json"] is sys.modules["json"]
    assert ns["os"] is sys.modules["os"]
    assert "OrderedDict" in ns
    with dv.sync_imports(quiet=True):
        import string  # noqa: F401
    assert capsys.readouterr().out == ""
    assert "string" in cluster.engines[2].namespace
    with dv.importer:
        import fractions  # noqa: F401
    assert "fractions" in cluster.engines[1].namespace
    with pytest.raises(ImportError), dv.sync_imports(quiet=True):
        import no_such_module_anywhere  # type: ignore[import-not-found]  # noqa: F401
    with pytest.raises(NotImplementedError, match="local=False"):
        dv.sync_imports(local=False)
    import builtins

    assert builtins.__import__.__module__ == "builtins"  # restored every time


def test_remote_import_failure_surfaces_when_leaving_the_block(rc: Client, cluster) -> None:
    cluster.engines[1].namespace["__builtins__"] = {"__import__": None}  # engine 1 cannot import
    with pytest.raises(CompositeError), rc[:].sync_imports(quiet=True):
        import textwrap  # noqa: F401


def test_use_dill_is_per_view(rc: Client) -> None:
    pytest.importorskip("dill")
    plain = rc[:]
    dilled = rc[:]
    dilled.use_dill()

    class Local:  # a class defined in a function: plain pickle cannot send it
        def __init__(self, v: int) -> None:
            self.v = v

    assert [x.v for x in dilled.apply_sync(lambda c: c(3), Local)] == [3, 3, 3]
    from corral.client import SerializationError

    with pytest.raises(SerializationError, match="use_dill"):
        plain.apply_async(lambda c: c(3), Local)
    assert plain._serializer.name == "pickle"
    assert dilled._serializer.name == "dill"
    dilled.push({"k": Local(4)}, block=True)


@interactive
def whoami() -> int:
    return engine_id  # type: ignore[name-defined]  # noqa: F821


def test_per_engine_namespaces(rc: Client, cluster) -> None:
    for eid, engine in cluster.engines.items():
        engine.namespace["engine_id"] = eid
    assert rc[:].apply_sync(whoami) == [0, 1, 2]
    assert rc[::2].apply_sync(whoami) == [0, 2]
    assert rc[-1].apply_sync(whoami) == 2
