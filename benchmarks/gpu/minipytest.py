"""A stand-in for pytest, for a GPU machine whose Python has no pytest (and no network to get it).

    python benchmarks/gpu/minipytest.py [--junitxml FILE] [-k SUBSTRING] tests/test_device.py ...

It runs what ``tests/test_device.py`` and ``tests/conftest.py`` use: fixtures (function or
session scope, ``autouse``, generator fixtures, ``tmp_path``), ``pytest.mark.parametrize`` (with
``ids``), ``pytest.skip / xfail / fail``. It writes a JUnit XML the way pytest does, so
``check.py tests`` reads either. With pytest installed, check.py uses pytest itself.
"""
from __future__ import annotations

import importlib.util
import inspect
import itertools
import shutil
import sys
import tempfile
import time
import traceback
import types
import xml.etree.ElementTree as ET
from pathlib import Path


class Skipped(Exception):
    pass


class XFailed(Exception):
    pass


class Failed(AssertionError):
    pass


def fixture(fn=None, *, scope="function", autouse=False, **_):
    def deco(f):
        f._mini_fixture = {"scope": scope, "autouse": autouse}
        return f
    return deco(fn) if callable(fn) else deco


class _NoOpMark:
    def __call__(self, *a, **k):
        if len(a) == 1 and callable(a[0]) and not k:
            return a[0]
        return lambda f: f


class _Mark:
    def parametrize(self, names, values, ids=None, **_):
        def deco(f):
            f.__dict__.setdefault("_mini_params", []).insert(0, (names, list(values), ids))
            return f
        return deco

    def __getattr__(self, name):
        return _NoOpMark()


def _raise(exc):
    def fn(msg="", **_):
        raise exc(msg)
    return fn


def _install_shim() -> None:
    mod = types.ModuleType("pytest")
    mod.fixture, mod.mark = fixture, _Mark()
    mod.skip, mod.xfail, mod.fail = _raise(Skipped), _raise(XFailed), _raise(Failed)
    mod.__minipytest__ = True
    sys.modules["pytest"] = mod


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _fixtures(module) -> dict:
    return {n: f for n, f in vars(module).items() if callable(f) and hasattr(f, "_mini_fixture")}


def _cases(fn):
    """``(id, params)`` for every combination of the function's parametrize marks."""
    marks = getattr(fn, "_mini_params", [])
    axes = []
    for names, values, ids in marks:
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        axis = []
        for i, v in enumerate(values):
            vals = v if len(names) > 1 else (v,)
            label = ids[i] if ids else "-".join(
                str(x) if isinstance(x, (str, int, float, bool)) or x is None else f"{names[j]}{i}"
                for j, x in enumerate(vals))
            axis.append((label, dict(zip(names, vals))))
        axes.append(axis)
    if not axes:
        return [("", {})]
    out = []
    for combo in itertools.product(*axes):
        params = {}
        for _, p in combo:
            params.update(p)
        out.append(("-".join(label for label, _ in combo), params))
    return out


class Runner:
    def __init__(self, fixtures: dict):
        self.fixtures, self.session = fixtures, {}

    def value(self, name: str, params: dict, teardown: list, tmp: list):
        if name in params:
            return params[name]
        if name == "tmp_path":
            d = Path(tempfile.mkdtemp(prefix="minipytest-"))
            tmp.append(d)
            return d
        if name in self.session:
            return self.session[name]
        fn = self.fixtures.get(name)
        if fn is None:
            raise Failed(f"fixture {name!r} not found")
        kwargs = {a: self.value(a, params, teardown, tmp)
                  for a in inspect.signature(fn).parameters}
        val = fn(**kwargs)
        if inspect.isgenerator(val):
            gen, val = val, next(val)
            teardown.append(gen)
        if fn._mini_fixture["scope"] in ("session", "module", "package"):
            self.session[name] = val
        return val

    def run(self, fn, params: dict) -> tuple[str, str]:
        teardown, tmp = [], []
        try:
            for name, f in self.fixtures.items():
                if f._mini_fixture["autouse"]:
                    self.value(name, params, teardown, tmp)
            kwargs = {a: self.value(a, params, teardown, tmp)
                      for a in inspect.signature(fn).parameters}
            fn(**kwargs)
            return "passed", ""
        except Skipped as e:
            return "skipped", str(e)
        except XFailed as e:
            return "xfailed", str(e)
        except BaseException as e:  # a test's failure, whatever it raised
            if isinstance(e, KeyboardInterrupt):
                raise
            return "failure", f"{type(e).__name__}: {e}\n{traceback.format_exc()[-2000:]}"
        finally:
            for gen in reversed(teardown):
                try:
                    next(gen)
                except StopIteration:
                    pass
            for d in tmp:
                shutil.rmtree(d, ignore_errors=True)


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    junit, k, files = None, None, []
    while args:
        a = args.pop(0)
        if a.startswith("--junitxml="):
            junit = a.split("=", 1)[1]
        elif a == "-k":
            k = args.pop(0)
        else:
            files.append(a)
    _install_shim()
    suite = ET.Element("testsuite", name="minipytest")
    failures = 0
    for file in files:
        path = Path(file).resolve()
        sys.path.insert(0, str(path.parent))
        fixtures = {}
        conftest = path.parent / "conftest.py"
        if conftest.exists():
            cmod = sys.modules.get("conftest") or _load(conftest, "conftest")
            fixtures.update(_fixtures(cmod))
            if hasattr(cmod, "pytest_configure"):
                cmod.pytest_configure(None)
        module = _load(path, path.stem)
        fixtures.update(_fixtures(module))  # the module's own fixtures override conftest's
        runner = Runner(fixtures)
        for name, fn in vars(module).items():
            if not (name.startswith("test") and inspect.isfunction(fn)):
                continue
            for label, params in _cases(fn):
                test_id = f"{name}[{label}]" if label else name
                if k and k not in test_id:
                    continue
                t0 = time.perf_counter()
                outcome, msg = runner.run(fn, params)
                dt = time.perf_counter() - t0
                case = ET.SubElement(suite, "testcase", classname=f"tests.{path.stem}",
                                     name=test_id, time=f"{dt:.3f}")
                if outcome == "failure":
                    failures += 1
                    ET.SubElement(case, "failure", message=msg.splitlines()[0][:500]).text = msg
                elif outcome in ("skipped", "xfailed"):
                    kind = "pytest.xfail" if outcome == "xfailed" else "pytest.skip"
                    ET.SubElement(case, "skipped", type=kind, message=msg[:500])
                print(f"{outcome.upper():8} {path.stem}::{test_id} ({dt:.1f}s)"
                      + (f"\n{msg}" if outcome == "failure" else ""), flush=True)
    if junit:
        root = ET.Element("testsuites")
        root.append(suite)
        ET.ElementTree(root).write(junit)
    print(f"minipytest: {len(suite)} tests, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
