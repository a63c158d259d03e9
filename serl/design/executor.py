"""placeholder"""
from __future__ import annotations
import builtins, json, os, re, signal, site, subprocess, sys, time, traceback, types

import numpy as np

from ..core import SerlError
from .static_check import ALLOWED_IMPORTS, short_text
from .isolation import (landlock, seccomp_filter, drop_capabilities, prctl, PR_SET_PDEATHSIG, PR_SET_DUMPABLE,
                        write_frame, read_frame, pack, unpack, FrameError, set_rlimits)

class ContractError(SerlError):
    "A component ran but broke its contract (shape, dtype, finiteness, gradient, mutation, determinism)."

class CandidateError(Exception):
    "The candidate failed in its executor process: `reason` (exception, memory, cpu, crash, output, blocked, monkeypatch, contract) and a message for a repair prompt."
    def __init__(self, reason: str, message: str):
        super().__init__(message); self.reason = reason

def same(a, b) -> bool:
    "Same shape, dtype and values (NaNs equal): a check's test that an input was left alone or a call repeated exactly."
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")

def as_np(x, what: str) -> np.ndarray:
    "`x` (a tensor, array or sequence of numbers) as a numpy array; a `ContractError` naming `what` otherwise."
    import torch
    if torch.is_tensor(x): x = x.detach().cpu().numpy()
    try: a = np.asarray(x)
    except Exception as e: raise ContractError(f"{what}: cannot convert {type(x).__name__} to an array: {e}") from e
    if a.dtype.kind not in "biuf": raise ContractError(f"{what}: expected numbers, got dtype {a.dtype}")
    return a

_DENY_PREFIX = ("socket.", "ctypes.", "subprocess.", "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork",
                "os.forkpty", "os.kill", "os.killpg", "signal.pthread_kill", "pty.", "os.putenv", "os.unsetenv",
                "os.symlink", "os.link", "os.chdir", "os.chroot", "webbrowser.", "urllib.", "http.", "ftplib.",
                "smtplib.", "builtins.input", "builtins.breakpoint", "sys.remote_exec", "os.startfile")
_WRITE_EVENTS = ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate", "os.utime",
                 "os.setxattr", "os.removexattr", "shutil.")
_LIST_EVENTS = ("os.listdir", "os.scandir", "glob.glob")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

def read_roots(extra=()) -> tuple[str, ...]:
    "What sandboxed processes may read: the interpreter, its libraries, serl and `extra`."
    import serl
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages(), os.path.dirname(serl.__file__),
             "/usr/lib", "/usr/lib64", "/lib", "/lib64", "/usr/local/lib", *map(str, extra)}
    return tuple(sorted({os.path.realpath(r) for r in roots if r and os.path.exists(r)}))

def _under(path, roots) -> bool:
    p = os.path.realpath(os.fsdecode(path))
    return any(p == r or p.startswith(r.rstrip("/") + "/") for r in roots)

class AuditGuard:
    "The executor's audit hook (a friendly first layer, not the boundary): refuses network, processes, ctypes and file access outside the read allow-list; records refusals."
    def __init__(self, roots: tuple[str, ...]):
        self.read_ok, self.blocked = tuple(roots) + ("/dev/null", "/dev/urandom"), []

    def refuse(self, event: str, detail: str):
        msg = f"{event} {short_text(detail, 120)}"
        if len(self.blocked) < 20: self.blocked.append(msg)
        raise PermissionError(f"sandbox: {msg} is not allowed")

    def __call__(self, event: str, args):
        if event == "open":
            path, mode, flags = args
            if isinstance(path, int) or path is None: return
            write = any(c in (mode or "") for c in "wax+") or bool((flags or 0) & _WRITE_FLAGS)
            if write: self.refuse(event, f"{path!r} for writing (the candidate writes no files)")
            if not _under(path, self.read_ok): self.refuse(event, f"{path!r} for reading (outside the allow-list)")
        elif event.startswith(_DENY_PREFIX) or event.startswith(_WRITE_EVENTS): self.refuse(event, repr(args)[:120])
        elif event.startswith(_LIST_EVENTS):
            p = args[0] if args else "."
            if isinstance(p, (str, bytes, os.PathLike)) and not _under(p, self.read_ok): self.refuse(event, repr(p))

_SAFE_BUILTIN_NAMES = (
    "abs all any ascii bin bool bytearray bytes callable chr classmethod complex dict divmod enumerate filter float "
    "format frozenset hasattr hash hex id int isinstance issubclass iter len list map max min next object oct ord pow "
    "print property range repr reversed round set slice sorted staticmethod str sum super tuple type zip "
    "BaseException Exception ArithmeticError AssertionError AttributeError FloatingPointError IndexError KeyError "
    "LookupError NameError NotImplementedError OverflowError RuntimeError StopIteration TypeError ValueError "
    "ZeroDivisionError Warning UserWarning RuntimeWarning DeprecationWarning NotImplemented Ellipsis True False None "
    "__build_class__").split()

def _guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level or name not in ALLOWED_IMPORTS: raise ImportError(f"import of {name!r} is not allowed in the sandbox")
    return builtins.__import__(name, globals, locals, fromlist, level)

def _guarded_getattr(obj, name, *default):
    if isinstance(name, str) and name.startswith("_"): raise AttributeError(f"getattr of {name!r} is not allowed in the sandbox")
    return getattr(obj, name, *default)

CANDIDATE_FILE = "<candidate>"

def exec_candidate(code: str) -> dict:
    "Execute `code` as module `serl_candidate` with restricted builtins; its namespace. Only ever called in an executor process."
    if os.environ.get("SERL_EXECUTOR") != "1": raise SerlError("exec_candidate: candidate code runs only in an executor process (use load_component)")
    import linecache
    linecache.cache[CANDIDATE_FILE] = (len(code), None, code.splitlines(True), CANDIDATE_FILE)
    mod = types.ModuleType("serl_candidate")
    b = {k: getattr(builtins, k) for k in _SAFE_BUILTIN_NAMES}
    b.update(__import__=_guarded_import, getattr=_guarded_getattr)
    mod.__dict__["__builtins__"] = b
    sys.modules["serl_candidate"] = mod
    exec(compile(code, CANDIDATE_FILE, "exec"), mod.__dict__)
    return mod.__dict__

def describe_error(e: BaseException) -> str:
    "Exception type and message, with the line of the candidate source where it was raised."
    where = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == CANDIDATE_FILE]
    loc = f" (candidate line {where[-1].lineno}: {where[-1].line.strip() if where[-1].line else ''})" if where else ""
    return short_text(f"{type(e).__name__}: {e}", 300) + loc

class BoundedText:
    "A text stream that keeps the first `limit` characters and counts the rest."
    def __init__(self, limit: int): self.limit, self.parts, self.n, self.kept = limit, [], 0, 0
    def write(self, s):
        s = str(s); self.n += len(s)
        if self.kept < self.limit:
            self.parts.append(s[: self.limit - self.kept]); self.kept += len(self.parts[-1])
        return len(s)
    def flush(self): pass
    def isatty(self): return False
    def text(self) -> str: return "".join(self.parts)

_WATCHED = ("math", "numpy", "numpy.random", "numpy.linalg", "torch", "torch.nn", "torch.nn.functional", "torch.nn.init",
            "torch.distributions")
_MISSING = object()

def _snapshot() -> dict:
    import torch
    snap = {m: dict(vars(sys.modules[m])) for m in _WATCHED if m in sys.modules}
    snap["torch.Tensor"] = dict(vars(torch.Tensor)); snap["torch.nn.Module"] = dict(vars(torch.nn.Module))
    return snap

def _patched(snap: dict) -> list[str]:
    import torch
    now = {m: vars(sys.modules[m]) for m in snap if m in sys.modules}
    now["torch.Tensor"], now["torch.nn.Module"] = vars(torch.Tensor), vars(torch.nn.Module)
    out = []
    for m, d in snap.items():
        cur = now[m]
        out += [f"{m}.{k}" for k in set(d) | set(cur) if k not in ("__warningregistry__",) and d.get(k, _MISSING) is not cur.get(k, _MISSING)
                and not (k not in d and isinstance(cur[k], types.ModuleType))]
    return sorted(out)

def untrusted_layers(cfg: dict) -> list:
    "Apply the executor's layers to this process: rlimits, no parent-death survival, no capabilities, Landlock (read the libraries only, write nothing), seccomp. The active ones."
    active = []
    set_rlimits(cfg.get("cpu_s"), cfg.get("mem_mb"), cfg.get("fsize_mb"), cfg.get("nofile", 64)); active.append("rlimits")
    try: prctl(PR_SET_PDEATHSIG, signal.SIGKILL); prctl(PR_SET_DUMPABLE, 0)
    except OSError: pass
    try: drop_capabilities()
    except OSError: pass
    try: landlock(read=tuple(cfg["read_roots"]), write_files=("/dev/null",)); active.append("landlock")
    except OSError: pass
    try: seccomp_filter(); active.append("seccomp")
    except OSError: pass
    return active

def _entries(ns: dict) -> dict:
    import inspect, torch.nn as nn
    fns, mods = [], []
    for k, v in ns.items():
        if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == "serl_candidate":
            try: inspect.signature(v).bind(0, 0); mods.append(k)
            except (TypeError, ValueError): pass
        elif isinstance(v, types.FunctionType) and v.__module__ == "serl_candidate": fns.append(k)
    return {"functions": fns, "modules": mods}

def executor_main(rfd: int, wfd: int, cfg: dict):
    "An executor process: apply the layers, then load candidates and call them on request (one frame in, one frame out). Never returns."
    os.environ.clear(); os.environ["SERL_EXECUTOR"] = "1"
    import torch
    torch.set_num_threads(1)
    layers = untrusted_layers(cfg)
    cap, limit = int(cfg.get("max_frame", 1 << 28)), int(cfg.get("max_stdout_chars", 20_000))
    out, err = BoundedText(limit), BoundedText(limit)
    guard = AuditGuard(tuple(cfg["read_roots"]))
    import _posixsubprocess
    _posixsubprocess.fork_exec = lambda *a, **k: guard.refuse("_posixsubprocess.fork_exec", "")
    snap = _snapshot()
    write_frame(wfd, pack({"ok": True, "layers": layers}))
    sys.addaudithook(guard)
    sys.stdout, sys.stderr = out, err
    spaces = []
    while True:
        try: msg = unpack(read_frame(rfd, cap))
        except (EOFError, OSError, FrameError): os._exit(0)
        try:
            op = msg["op"]
            if op == "load":
                spaces.append(exec_candidate(msg["code"]))
                reply = {"ok": True, "id": len(spaces) - 1, **_entries(spaces[-1])}
            elif op == "call":
                args, kwargs = msg["args"], msg["kwargs"]
                value = spaces[msg["id"]][msg["name"]](*args, **kwargs)
                reply = {"ok": True, "value": value, "args": args, "kwargs": kwargs}
            elif op == "net":
                torch.set_rng_state(msg["rng"])
                net = spaces[msg["id"]][msg["name"]](msg["obs_dim"], msg["act_dim"])
                reply = {"ok": True, "spec": network_spec(net), "rng": torch.get_rng_state()}
            else: reply = {"ok": False, "reason": "crash", "message": f"unknown op {op!r}"}
        except MemoryError: reply = {"ok": False, "reason": "memory", "message": f"out of memory (the limit is {cfg.get('mem_mb')} MB of address space)"}
        except ContractError as e: reply = {"ok": False, "reason": "contract", "message": short_text(str(e))}
        except BaseException as e:
            mem = "can't allocate memory" in str(e) or "bad_alloc" in str(e)
            reply = {"ok": False, "reason": "memory" if mem else "exception", "message": describe_error(e)}
        reply.update(printed=max(out.n, err.n), blocked=guard.blocked[:1], patched=_patched(snap)[:5])
        try: data = pack(reply)
        except (TypeError, ValueError, OverflowError) as e:
            data = pack({"ok": False, "reason": "contract", "message": short_text(f"the candidate returned something that cannot leave the sandbox: {e}"),
                         "printed": max(out.n, err.n), "blocked": guard.blocked[:1], "patched": _patched(snap)[:5]})
        if len(data) > cap:
            data = pack({"ok": False, "reason": "contract", "message": f"the candidate returned {len(data)} bytes; the limit is {cap}",
                         "printed": 0, "blocked": [], "patched": []})
        try: write_frame(wfd, data)
        except OSError: os._exit(0)

_SIG_REASON = {signal.SIGXCPU: ("cpu", "CPU time limit exceeded ({cpu} s): an infinite or very long loop?"),
               signal.SIGKILL: ("cpu", "killed (SIGKILL): past the CPU time limit ({cpu} s), or by the out-of-memory killer"),
               signal.SIGSEGV: ("crash", "the candidate's process crashed (segmentation fault)"),
               signal.SIGSYS: ("blocked", "the candidate's process made a forbidden system call"),
               signal.SIGABRT: ("crash", "the candidate's process aborted (SIGABRT), often a failed allocation"),
               signal.SIGXFSZ: ("output", "file-size limit exceeded ({fsize} MB)")}

class Executor:
    "The trusted side of one executor process (where candidate code runs): load, call, build a network; every failure is also kept in `.failure`."
    def __init__(self, cfg: dict, pid: int, rfd: int, wfd: int, proc=None):
        self.cfg, self.pid, self.rfd, self.wfd, self.proc, self.failure = cfg, pid, rfd, wfd, proc, None
        self.layers = self._reply({}).get("layers", [])

    @classmethod
    def fork(cls, cfg: dict) -> "Executor":
        "A fork of this (trusted) process as the executor; it closes every descriptor but its two pipe ends and stdout/stderr."
        r1, w1 = os.pipe(); r2, w2 = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                keep = {0, 1, 2, r1, w2}
                for fd in os.listdir("/proc/self/fd"):
                    if int(fd) not in keep:
                        try: os.close(int(fd))
                        except OSError: pass
                executor_main(r1, w2, cfg)
            finally: os._exit(70)
        os.close(r1); os.close(w2)
        return cls(cfg, pid, r2, w1)

    @classmethod
    def spawn(cls, cfg: dict) -> "Executor":
        "A fresh interpreter as the executor (outside a sandbox job: nothing of this process's memory or environment goes with it)."
        r1, w1 = os.pipe(); r2, w2 = os.pipe()
        code = f"from serl.design.executor import executor_main; import json; executor_main({r1}, {w2}, json.loads({json.dumps(json.dumps(cfg))}))"
        proc = subprocess.Popen([sys.executable, "-I", "-B", "-c", code], pass_fds=(r1, w2), stdin=subprocess.DEVNULL,
                                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1"}, start_new_session=True)
        os.close(r1); os.close(w2)
        return cls(cfg, proc.pid, r2, w1, proc)

    def _dead(self) -> CandidateError:
        if self.proc is not None: rc = self.proc.wait()
        else: rc = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        self.pid = None
        reason, msg = _SIG_REASON.get(-rc, ("crash", f"the candidate's process exited with code {rc} without answering"))
        return CandidateError(reason, msg.format(cpu=self.cfg.get("cpu_s"), fsize=self.cfg.get("fsize_mb")))

    def fail(self, e: CandidateError) -> CandidateError:
        if self.failure is None: self.failure = e
        return e

    def _reply(self, msg: dict | None) -> dict:
        if self.pid is None: raise self.failure or CandidateError("crash", "the candidate's process is gone")
        try:
            if msg: write_frame(self.wfd, pack(msg))
            rep = unpack(read_frame(self.rfd, int(self.cfg.get("max_frame", 1 << 28))))
        except (EOFError, BrokenPipeError): raise self.fail(self._dead()) from None
        except FrameError as e: raise self.fail(CandidateError("contract", f"the candidate's answer was refused: {e}")) from None
        if not isinstance(rep, dict): raise self.fail(CandidateError("crash", "malformed answer"))
        for key, reason, text in (("blocked", "blocked", "blocked by the sandbox: {}"),
                                  ("patched", "monkeypatch", "modified library attributes {} (monkey-patching is not allowed)")):
            if rep.get(key): self.fail(CandidateError(reason, text.format(rep[key][0] if key == "blocked" else rep[key])))
        if rep.get("printed", 0) > self.cfg.get("max_stdout_chars", 20_000):
            self.fail(CandidateError("output", f"printed {rep['printed']} characters; the limit is {self.cfg.get('max_stdout_chars', 20_000)}"))
        if not rep.get("ok", False):
            e = CandidateError(str(rep.get("reason", "exception")), str(rep.get("message", "failed")))
            raise self.fail(e) if e.reason != "exception" else e
        return rep

    def load(self, code: str) -> dict:
        "Execute `code` in the executor; a namespace of stand-ins: a proxy per function, a network class per nn.Module class."
        rep = self._reply({"op": "load", "code": code})
        ns = {n: _proxy(self, rep["id"], n) for n in rep["functions"]}
        ns.update({n: _network_class(self, rep["id"], n) for n in rep["modules"]})
        ns["__entries__"] = rep
        return ns

    def close(self):
        for fd in (self.rfd, self.wfd):
            try: os.close(fd)
            except OSError: pass
        if self.pid is not None:
            try: os.kill(self.pid, signal.SIGKILL)
            except OSError: pass
            try: self.proc.wait() if self.proc is not None else os.waitpid(self.pid, 0)
            except ChildProcessError: pass
            self.pid = None

def _write_back(a, b):
    "Apply the executor's view `b` of an argument to the caller's object `a` (in-place changes the candidate made)."
    import torch
    if torch.is_tensor(a) and torch.is_tensor(b):
        if a.shape == b.shape and a.dtype == b.dtype:
            if not torch.equal(a, b) and not same(a.detach().numpy(), b.numpy()):
                with torch.no_grad(): a.copy_(b)
        else:
            with torch.no_grad(): a.set_(b.to(a.dtype))
    elif isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        if a.shape == b.shape and not same(a, b.astype(a.dtype, copy=False)): a[...] = b
        elif a.shape != b.shape: raise ContractError(f"the candidate changed the shape of an input array {a.shape} -> {b.shape}")
    elif isinstance(a, dict) and isinstance(b, dict):
        for k in [k for k in a if k not in b]: del a[k]
        for k, v in b.items():
            if k in a and type(a[k]) is type(v) and isinstance(v, (dict, list, np.ndarray)) or (k in a and hasattr(v, "shape") and hasattr(a[k], "shape")): _write_back(a[k], v)
            else: a[k] = v
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b): a[:] = b
        else:
            for i, (x, y) in enumerate(zip(a, b)):
                if isinstance(y, (dict, list, np.ndarray)) or hasattr(y, "shape"): _write_back(x, y)
                else: a[i] = y
    elif isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        for x, y in zip(a, b): _write_back(x, y)
    elif isinstance(a, np.random.Generator) and isinstance(b, np.random.Generator): a.bit_generator.state = b.bit_generator.state

def _proxy(ex: Executor, ns_id: int, name: str):
    def candidate_function(*args, **kwargs):
        rep = ex._reply({"op": "call", "id": ns_id, "name": name, "args": args, "kwargs": kwargs})
        _write_back(args, rep["args"]); _write_back(kwargs, rep["kwargs"])
        return rep["value"]
    candidate_function.__name__ = candidate_function.__qualname__ = name
    candidate_function.__module__ = "serl_candidate"
    return candidate_function

def _remote_spec(ex: Executor, ns_id: int, name: str, obs_dim: int, act_dim: int) -> dict:
    "The declarative spec of the candidate's network `name(obs_dim, act_dim)`, built in the executor under this process's torch RNG state (advanced as if built here)."
    import torch
    rep = ex._reply({"op": "net", "id": ns_id, "name": name, "obs_dim": int(obs_dim), "act_dim": int(act_dim), "rng": torch.get_rng_state()})
    torch.set_rng_state(rep["rng"])
    return rep["spec"]

def _network_class(ex: Executor, ns_id: int, name: str):
    def __new__(cls, obs_dim, act_dim): return build_network(_remote_spec(ex, ns_id, name, obs_dim, act_dim))
    return type(name, (), {"__new__": __new__, "__module__": "serl_candidate", "ns_id": ns_id, "executor": ex,
                           "__doc__": f"The candidate's {name}, traced in its executor and rebuilt here from the declarative spec."})

_FN_SPACES = ("torch", "torch.nn.functional", "torch.special", "torch.linalg", "operator", "math")
_BAD_NAME = re.compile(r"save|load|file|seed|^set|compile|jit|hub|thread|print|determin|library|ops|cuda|mps|backend|export|"
                       r"storage|serial|memmap|share|pin|rng|manual|hook|numpy|tolist|data_ptr|apply|map_|record|backward|"
                       r"grad|register|^to$|cpu|detach_|requires_grad_|retain|resize|from_|frombuffer|as_strided|^set_|vmap|cond|func")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

def _fn_name(f) -> str:
    import importlib
    for space in _FN_SPACES:
        mod = importlib.import_module(space)
        n = getattr(f, "__name__", "")
        if n and getattr(mod, n, None) is f: return f"{space}:{n}"
    if f is getattr: return "builtins:getattr"
    raise ContractError(f"network: forward calls {getattr(f, '__qualname__', f)!r}, which a rebuilt network cannot use (torch, torch.nn.functional, operator and math functions only)")

def _ok_name(n: str) -> bool: return bool(_NAME.fullmatch(n)) and not _BAD_NAME.search(n)

def network_spec(net) -> dict:
    "A declarative description of `net` (runs in the executor): parameters and buffers by name, and its forward as a torch.fx graph of allow-listed torch calls, once in training and once in eval mode."
    import torch, torch.fx as fx
    import torch.nn as nn
    if not isinstance(net, nn.Module): raise ContractError(f"network: the class built a {type(net).__name__}, not an nn.Module")
    class _Flat(fx.Tracer):
        def is_leaf_module(self, m, qualname): return False
    consts, graphs = {}, {}
    for mode in ("train", "eval"):
        net.train(mode == "train")
        try: g = _Flat().trace(net)
        except Exception as e:
            raise ContractError(f"network: forward must be traceable by torch.fx (no Python branches or loops on tensor values): {type(e).__name__}: {short_text(e, 200)}") from None
        def arg(x):
            if isinstance(x, fx.Node): return {"$node": x.name}
            if isinstance(x, (list, tuple)): return type(x)(arg(v) for v in x)
            if isinstance(x, dict): return {k: arg(v) for k, v in x.items()}
            return x
        nodes = []
        for n in g.nodes:
            t = n.target
            if n.op == "call_function": t = _fn_name(t)
            elif n.op == "get_attr":
                if t not in dict(net.named_parameters()) and t not in dict(net.named_buffers()):
                    v = net
                    for p in t.split("."): v = getattr(v, p)
                    consts[t] = v.detach() if torch.is_tensor(v) else torch.as_tensor(v)
            elif n.op == "call_module": raise ContractError(f"network: submodule {t!r} cannot be traced through")
            nodes.append([n.name, n.op, str(t), arg(n.args), arg(dict(n.kwargs))])
        graphs[mode] = nodes
    return {"params": {k: v.detach() for k, v in net.named_parameters()},
            "buffers": {k: v.detach() for k, v in net.named_buffers()}, "consts": consts, "graphs": graphs}

def _resolve_fn(qual: str):
    import importlib
    space, _, name = qual.partition(":")
    if space == "builtins" and name == "getattr": return getattr
    if space not in _FN_SPACES or not _ok_name(name): raise ContractError(f"network spec: function {qual!r} is not allowed")
    f = getattr(importlib.import_module(space), name, None)
    if not callable(f) or isinstance(f, type) and not space == "operator": raise ContractError(f"network spec: {qual!r} is not a function")
    return f

def _module_at(root, path: list, create: bool = True):
    import torch.nn as nn
    m = root
    for p in path:
        if not _NAME.fullmatch(p) and not p.isdigit(): raise ContractError(f"network spec: bad name {p!r}")
        if p not in m._modules:
            if not create: raise ContractError(f"network spec: no submodule {p!r}")
            m.add_module(p, nn.Module())
        m = m._modules[p]
    return m

def build_network(spec: dict):
    "A trusted nn.Module from `network_spec`'s description: the same parameter names (state dicts load), its forward an interpreter of the allow-listed graph. No candidate code runs."
    import torch, torch.nn as nn
    class RebuiltNetwork(nn.Module):
        "A network rebuilt from a declarative spec (serl.design.executor.build_network)."
        def forward(self, *inputs): return _interpret(self, self.graphs["train" if self.training else "eval"], inputs)
    net = RebuiltNetwork()
    for kind in ("params", "buffers"):
        for k, v in spec.get(kind, {}).items():
            path = k.split(".")
            m = _module_at(net, path[:-1])
            if not _NAME.fullmatch(path[-1]): raise ContractError(f"network spec: bad name {k!r}")
            if kind == "params": m.register_parameter(path[-1], nn.Parameter(torch.as_tensor(v).clone()))
            else: m.register_buffer(path[-1], torch.as_tensor(v).clone())
    net.consts = {k: torch.as_tensor(v) for k, v in spec.get("consts", {}).items()}
    graphs = spec.get("graphs", {})
    if set(graphs) != {"train", "eval"}: raise ContractError("network spec: needs a train and an eval graph")
    for nodes in graphs.values():
        for name, op, target, args, kwargs in nodes:
            if op == "call_function": _resolve_fn(target)
            elif op == "call_method" and not _ok_name(target): raise ContractError(f"network spec: method {target!r} is not allowed")
            elif op not in ("placeholder", "get_attr", "output", "call_method"): raise ContractError(f"network spec: op {op!r} is not allowed")
    net.graphs, net.spec = graphs, spec
    return net

def network_spec_task(code: str, kind: str, payload: dict) -> dict:
    "Trusted sandbox task: the spec of the code's network class for the payload's obs_dim/act_dim (seeded), packed as bytes (`unpack` reads it back)."
    import torch
    ns = load_component(code, kind)
    mods = ns["__entries__"]["modules"]
    if not mods: raise ContractError(f"{kind}: no nn.Module subclass with __init__(self, obs_dim, act_dim) defined")
    torch.manual_seed(int(payload.get("seed", 0)))
    cls = ns[mods[-1]]
    spec = _remote_spec(cls.executor, cls.ns_id, mods[-1], int(payload["obs_dim"]), int(payload["act_dim"]))
    return {"spec": np.frombuffer(pack(spec), np.uint8)}

NETWORK_SPEC_TASK = "serl.design.executor:network_spec_task"

def save_network(net, path):
    "A checkpoint of a rebuilt network: its spec (bytes) and state dict, loadable with `torch.load(weights_only=True)` (`load_network`)."
    import torch
    torch.save({"spec": torch.frombuffer(bytearray(pack(net.spec)), dtype=torch.uint8), "state_dict": net.state_dict()}, path)

def load_network(path):
    "The network of a `save_network` checkpoint: `torch.load(weights_only=True)`, rebuilt from its spec; no code is loaded."
    import torch
    ck = torch.load(path, map_location="cpu", weights_only=True)
    net = build_network(unpack(ck["spec"].numpy().tobytes()))
    net.load_state_dict(ck["state_dict"])
    return net

def _interpret(net, nodes, inputs):
    env, it = {}, iter(inputs)
    def val(x):
        if isinstance(x, dict): return env[x["$node"]] if set(x) == {"$node"} else {k: val(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)): return type(x)(val(v) for v in x)
        return x
    for name, op, target, args, kwargs in nodes:
        if op == "placeholder": env[name] = next(it)
        elif op == "get_attr":
            if target in net.consts: env[name] = net.consts[target]
            else:
                *path, leaf = target.split(".")
                m = _module_at(net, path, create=False)
                env[name] = m._parameters[leaf] if leaf in m._parameters else m._buffers[leaf]
        elif op == "call_function":
            a, kw = val(args), val(kwargs)
            f = _resolve_fn(target)
            if f is getattr and (len(a) != 2 or not isinstance(a[1], str) or not _ok_name(a[1])): raise ContractError(f"network spec: getattr {a[1:]!r}")
            env[name] = f(*a, **kw)
        elif op == "call_method":
            a, kw = val(args), val(kwargs)
            env[name] = getattr(a[0], target)(*a[1:], **kw)
        elif op == "output": return val(args)[0]

_JOB_EXECUTOR: Executor | None = None
_LOCAL_EXECUTOR: Executor | None = None

def executor_config(read_extra=(), cpu_s: int = 60, mem_mb: int = 3072, fsize_mb: int = 64, max_stdout_chars: int = 20_000,
                    max_frame: int = 1 << 28) -> dict:
    "The settings of an executor process."
    return dict(read_roots=list(read_roots(read_extra)), cpu_s=cpu_s, mem_mb=mem_mb, fsize_mb=fsize_mb, max_stdout_chars=max_stdout_chars, max_frame=max_frame)

def set_job_executor(ex: Executor | None):
    "Make `ex` the executor `load_component` uses in this process (a sandbox job sets its pre-forked one)."
    global _JOB_EXECUTOR
    _JOB_EXECUTOR = ex

def job_executor() -> Executor | None:
    "The executor of this sandbox job (None outside a job)."
    return _JOB_EXECUTOR

def load_component(code: str, kind: str | None = None) -> dict:
    "Load `code` into an executor process (the job's; outside a job, a fresh interpreter started once per process) and return stand-ins for its functions and network classes. No candidate code runs in the calling process."
    global _LOCAL_EXECUTOR
    ex = _JOB_EXECUTOR
    if ex is None:
        if _LOCAL_EXECUTOR is None or _LOCAL_EXECUTOR.pid is None: _LOCAL_EXECUTOR = Executor.spawn(executor_config())
        ex = _LOCAL_EXECUTOR
    return ex.load(code)

def entry_points(ns: dict, spec):
    "The component's callable(s) named by `spec`: the network class, or the named functions (one, or a list)."
    from .static_check import as_spec
    k = as_spec(spec)
    ent = ns.get("__entries__", {})
    if k.module_class:
        mods = ent.get("modules", [])
        if not mods: raise ContractError(f"{k.name}: no nn.Module subclass with __init__(self, obs_dim, act_dim) defined")
        return ns[mods[-1]]
    out = []
    for name in k.functions:
        f = ns.get(name) if name in ent.get("functions", ()) else None
        if not callable(f): raise ContractError(f"{k.name}: no function {name}() defined")
        out.append(f)
    return out[0] if len(out) == 1 else out
