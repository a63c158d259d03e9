"""placeholder"""
from __future__ import annotations
import importlib, json, os, select, shutil, signal, subprocess, sys, tempfile, time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
from fastcore.basics import patch

from ..core import SerlError
from .static_check import (Verdict, Limits, Spec, as_spec, extract_code, static_check, short_text, fail_verdict)
from .isolation import (LAYERS, required_layers, check_layers, enter_namespaces, start_pid_init, in_user_namespace, worker_layers, landlock,
                        landlock_abi, seccomp_filter, seccomp_supported, drop_capabilities, prctl, PR_SET_DUMPABLE, set_rlimits,
                        write_frame, read_frame, pack, unpack, FrameError)
from .executor import (ContractError, CandidateError, Executor, load_component, entry_points, same, as_np, executor_config,
                       set_job_executor, read_roots, BoundedText, describe_error, CANDIDATE_FILE)

def resolve(name: str) -> Callable:
    "A trusted function from 'module:function' (module must start with one of `TRUSTED_PREFIXES`)."
    mod, _, fn = name.partition(":")
    if not fn or not mod.startswith(TRUSTED_PREFIXES): raise SerlError(f"task/validator {name!r} must be 'module:function' in {TRUSTED_PREFIXES}")
    return getattr(importlib.import_module(mod), fn)

TRUSTED_PREFIXES = ("serl.",)

def check_component(code: str, spec, payload: dict) -> dict:
    "The default job (runs in the trusted job process): load `code` into the job's executor, run the spec's trusted check on the stand-ins of its entry points."
    import torch
    spec = as_spec(spec)
    seed = int(payload.get("seed", 0))
    torch.manual_seed(seed); np.random.seed(seed)
    return {"kind": spec.name, **resolve(spec.check)(entry_points(load_component(code, spec.name), spec), payload)}

def _parent_recheck(spec: Spec, payload: dict, details: dict):
    "Re-check the data a `check_component` run returned, with the spec's trusted `recheck` in the parent (data only, never code)."
    if spec.recheck: resolve(spec.recheck)(payload, details)

def _close_fds(keep: set):
    for fd in os.listdir("/proc/self/fd"):
        if int(fd) not in keep:
            try: os.close(int(fd))
            except OSError: pass

def _trusted_layers(req: dict, scratch: str) -> list:
    "The job process's own layers (it runs trusted code on untrusted data): rlimits, not dumpable, no capabilities, Landlock, seccomp."
    active = []
    set_rlimits(req["cpu_s"], req["mem_mb"], req["fsize_mb"]); active.append("rlimits")
    prctl(PR_SET_DUMPABLE, 0)
    try: drop_capabilities()
    except OSError: pass
    try: landlock(read=tuple(req["read_roots"]) + ("/proc/cpuinfo", "/sys/devices/system/cpu"), write=(scratch,), write_files=("/dev/null",)); active.append("landlock")
    except OSError: pass
    try: seccomp_filter(); active.append("seccomp")
    except OSError: pass
    return active

def _run_job(req: dict, wfd: int, worker: list):
    "One job in a fresh fork of the worker: own process group, only its result pipe open, the executor forked first, then the job's layers; the trusted task; its result as one frame on the pipe."
    os.setpgid(0, 0)
    scratch = os.path.realpath(req["scratch"])
    for fd, name, flags in ((0, "/dev/null", os.O_RDONLY), (1, os.path.join(scratch, "stdout.txt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                            (2, os.path.join(scratch, "stderr.txt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
        new = os.open(name, flags, 0o600); os.dup2(new, fd); os.close(new)
    _close_fds({0, 1, 2, wfd})                         # the worker's protocol pipes and every other job's are gone
    sys.stdin = None
    ex = Executor.fork(executor_config((), req["cpu_s"], req["mem_mb"], req["fsize_mb"], req["max_stdout_chars"], 4 * req["max_result_bytes"] + (1 << 24)))
    set_job_executor(ex)
    own = _trusted_layers(req, scratch)
    layers = sorted(set(worker) | (set(own) & set(ex.layers)))
    os.chdir(scratch)
    task = resolve(req["task"]) if req["task"] else (lambda code, kind, payload: check_component(code, req["spec"], payload))
    out, err = BoundedText(req["max_stdout_chars"]), BoundedText(req["max_stdout_chars"])
    sys.stdout, sys.stderr = out, err
    res = {"ok": True, "message": "ok", "details": {}}
    try:
        missing = [l for l in req["require"] if l not in layers]
        if missing: raise SerlError(f"the job could not apply the isolation layer(s) {missing}")
        r = task(req["code"], req["kind"], req["payload"])
        res["details"] = r if isinstance(r, dict) else {"result": r}
    except ContractError as e: res = {"ok": False, "message": short_text(str(e)), "reason": "contract"}
    except CandidateError as e: res = {"ok": False, "message": short_text(str(e)), "reason": e.reason}
    except MemoryError: res = {"ok": False, "message": f"out of memory (the limit is {req['mem_mb']} MB of address space)", "reason": "memory"}
    except BaseException as e: res = {"ok": False, "message": describe_error(e), "reason": "exception"}
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    if ex.failure is not None: res = {"ok": False, "message": short_text(str(ex.failure)), "reason": ex.failure.reason}
    elif out.n > req["max_stdout_chars"] or err.n > req["max_stdout_chars"]:
        res = {"ok": False, "message": f"printed {max(out.n, err.n)} characters; the limit is {req['max_stdout_chars']}", "reason": "output"}
    res["layers"] = layers
    ex.close()
    try: data = pack(res)
    except (TypeError, ValueError) as e: data = pack({"ok": False, "message": f"the task returned data that cannot be sent: {e}", "reason": "crash", "layers": layers})
    write_frame(wfd, data)

def _collect(pid: int, rfd: int, wall_s: float, cap: int) -> tuple[int, bool, bytes | None, bool]:
    "Read a job's result pipe while it runs (at most `cap` bytes), kill its process group after `wall_s`: (exit code, timed out, bytes, too large)."
    end, buf, n, too_big, timed_out, status = time.monotonic() + wall_s, [], 0, False, False, None
    open_ = True
    while True:
        if open_:
            r, _, _ = select.select([rfd], [], [], 0.002)
            if r:
                b = os.read(rfd, 1 << 20)
                if not b: open_ = False
                elif n + len(b) > cap + 8: too_big = True; break
                else: buf.append(b); n += len(b)
        done, st = os.waitpid(pid, os.WNOHANG)
        if done: status = st; break
        if time.monotonic() > end: timed_out = True; break
        if not open_: time.sleep(0.002)
    if status is None:
        for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
            try: target()
            except (ProcessLookupError, PermissionError): pass
        status = os.waitpid(pid, 0)[1]
    else:
        try: os.killpg(pid, signal.SIGKILL)                      # anything the job left behind in its group
        except (ProcessLookupError, PermissionError): pass
    while open_ and not too_big:                                   # what the job wrote just before it exited
        r, _, _ = select.select([rfd], [], [], 0)
        b = os.read(rfd, 1 << 20) if r else b""
        if not b: break
        if n + len(b) > cap + 8: too_big = True; break
        buf.append(b); n += len(b)
    os.close(rfd)
    data = b"".join(buf)
    if too_big or timed_out or len(data) < 8: return os.waitstatus_to_exitcode(status), timed_out, None, too_big
    import struct
    size = struct.unpack(">Q", data[:8])[0]
    return os.waitstatus_to_exitcode(status), False, (data[8:] if size == len(data) - 8 else None), False

def _worker_main():
    "The worker: its namespaces' init, the trusted modules imported once, then one fresh job process per job frame (a fork server); answers are frames on stdout."
    inp, outp = 0, os.dup(1)
    cfg = unpack(read_frame(inp, 1 << 26))
    userns = in_user_namespace()
    proc_ok = start_pid_init()
    import torch
    torch.set_num_threads(1)
    for name in ("math", "numpy", "numpy.random", "numpy.linalg", "torch", "torch.nn", "torch.nn.functional", "torch.nn.init",
                 "torch.distributions", "torch.fx"): importlib.import_module(name)
    for name in cfg.get("preload", []): resolve(name)()   # trusted warm-up functions (compile kernels before any job)
    layers = worker_layers(userns, proc_ok, cfg["root"]) + ["rlimits"] + (["landlock"] if landlock_abi() > 0 else []) + (["seccomp"] if seccomp_supported() else [])
    ns_layers = [l for l in layers if l in ("userns", "netns", "pidns", "mountns")]
    write_frame(outp, pack({"ready": True, "layers": layers}))
    while True:
        try: job = unpack(read_frame(inp, 1 << 28))
        except EOFError: break
        for name in job.get("preload", []):
            try: resolve(name)
            except Exception: pass                       # the job itself reports the error
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r); os.close(inp); os.close(outp)
                _run_job(job, w, ns_layers)
            finally: os._exit(0)
        os.close(w)
        try: os.setpgid(pid, pid)
        except OSError: pass
        rc, timed_out, data, too_big = _collect(pid, r, job["wall_s"], job["max_result_bytes"] + (1 << 20))
        write_frame(outp, pack({"rc": rc, "timed_out": timed_out, "too_big": too_big,
                                "result": None if data is None else np.frombuffer(data, np.uint8)}))

def seed_numba_cache() -> int:
    "Copy serl's compiled numba kernels (the package's `__pycache__`) into this process's `NUMBA_CACHE_DIR` so they load instead of recompiling; files copied (a warm-up step of workers)."
    import glob, hashlib, serl
    root = os.environ.get("NUMBA_CACHE_DIR")
    if not root: return 0
    n = 0
    for cache in glob.glob(os.path.join(os.path.dirname(os.path.abspath(serl.__file__)), "**", "__pycache__"), recursive=True):
        src = os.path.dirname(cache)                                  # numba's _UserProvidedCacheLocator layout, one per folder:
        dst = os.path.join(os.path.abspath(root), f"{os.path.basename(src)}_{hashlib.sha1(src.encode()).hexdigest()}")
        files = glob.glob(os.path.join(cache, "*.nb[ic]"))
        if files: os.makedirs(dst, exist_ok=True)
        for f in files: shutil.copy2(f, dst)
        n += len(files)
    return n

def _user_tasks() -> int:
    "Processes + threads of this user (what RLIMIT_NPROC counts)."
    uid, n = os.getuid(), 0
    for p in os.listdir("/proc"):
        if not p.isdigit(): continue
        try:
            if os.stat(f"/proc/{p}").st_uid == uid: n += len(os.listdir(f"/proc/{p}/task"))
        except OSError: pass
    return n

def _preexec(limits: Limits, cpu_s: int, nproc: int, root: str):
    def f():
        set_rlimits(cpu_s, limits.mem_mb, limits.fsize_mb, limits.nofile, nproc)
        if limits.network_namespace: enter_namespaces(root)
    return f

def _kill_session(sid: int):
    "SIGKILL every process of session `sid` (the server and all its jobs)."
    for p in os.listdir("/proc"):
        if not p.isdigit(): continue
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
            if int(stat[stat.rindex(")") + 2:].split()[3]) == sid: os.kill(int(p), signal.SIGKILL)
        except (OSError, ValueError, IndexError): pass

_SIGNALS = {signal.SIGXCPU: ("cpu", "CPU time limit exceeded ({cpu} s): an infinite or very long loop?"),
            signal.SIGKILL: ("cpu", "killed (SIGKILL): past the CPU time limit ({cpu} s), or by the system's out-of-memory killer"),
            signal.SIGSEGV: ("crash", "the job crashed (segmentation fault)"),
            signal.SIGABRT: ("crash", "the job aborted (SIGABRT), often a failed allocation"),
            signal.SIGXFSZ: ("output", "file-size limit exceeded ({fsize} MB)")}

def _tail(path: Path, n: int = 600) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - n)); return fh.read().decode("utf-8", "replace")
    except OSError: return ""

class Sandbox:
    "A fork-server worker for many sandboxed jobs: `with Sandbox() as sb: sb.run(code, spec)`; `.layers` are the isolation layers its jobs get."
    SERVER_CPU_S = 3600
    START_TIMEOUT_S = 180

    def __init__(self, limits: Limits | None = None, preload: tuple = ()):
        "`preload`: trusted 'module:function' warm-up functions the worker calls once at start (their work is inherited by every job)."
        self.limits, self.preload, self.proc, self.root = limits or Limits(), tuple(preload), None, None
        self.layers = None

    @property
    def net_namespace(self) -> bool | None: return None if self.layers is None else "netns" in self.layers

    def start(self):
        if self.proc is not None and self.proc.poll() is None: return self
        self.close()
        required = required_layers(self.limits.require)
        self.root = Path(tempfile.mkdtemp(prefix="serl-sandbox-"))
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.root), "TMPDIR": str(self.root), "LANG": "C.UTF-8",
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "NUMBA_CACHE_DIR": str(self.root / ".numba")}
        nproc = self.limits.nproc + (_user_tasks() if os.getuid() != 0 else 0)
        cmd = [sys.executable, "-I", "-B", "-c", "from serl.design.sandbox import _worker_main; _worker_main()"]
        self._err = open(self.root / "server.err", "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err, cwd=self.root, env=env,
                                     close_fds=True, start_new_session=True, bufsize=0,
                                     preexec_fn=_preexec(self.limits, self.SERVER_CPU_S, nproc, str(self.root)))
        self._send({"preload": list(self.preload), "root": str(self.root)})
        msg = self._recv(self.START_TIMEOUT_S, 1 << 20)
        if not msg or not msg.get("ready"):
            err = _tail(self.root / "server.err")
            self.close()
            raise SerlError(f"sandbox: the worker did not start: {err[-500:]}")
        self.layers = sorted(msg["layers"])
        try: check_layers(self.layers, required)
        except SerlError: self.close(); raise
        return self

    def _send(self, obj): write_frame(self.proc.stdin.fileno(), pack(obj))

    def _recv(self, timeout: float, cap: int) -> dict | None:
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not r: return None
        try: return unpack(read_frame(self.proc.stdout.fileno(), cap))
        except (EOFError, FrameError): return None

    def close(self):
        if self.proc is not None:
            try: self.proc.stdin.close()
            except OSError: pass
            try: self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired: pass
            _kill_session(self.proc.pid)
            try: self.proc.kill()
            except OSError: pass
            self.proc.wait()
            self._err.close()
        if self.root is not None: shutil.rmtree(self.root, ignore_errors=True)
        self.proc = self.root = None

    def __enter__(self): return self.start()
    def __exit__(self, *exc): self.close()
    def __del__(self):
        try: self.close()
        except Exception: pass

@patch
def run(self: Sandbox, code: str, spec, task: str | None = None, payload: dict | None = None,
        limits: Limits | None = None, static: bool = True) -> Verdict:
    "Stage 1 (unless `static=False`), then in a fresh job process the trusted `task(code, spec.name, payload)`, or (no task) `check_component` with the spec's check; candidate code only in the job's executor; a `Verdict` (details['layers']: the isolation layers that were active)."
    t0, limits, payload, spec = time.perf_counter(), limits or self.limits, dict(payload or {}), as_spec(spec)
    if task is not None: resolve(task)                             # trusted tasks only
    if task is None and not spec.check: raise SerlError(f"sandbox: spec {spec.name!r} has no check and no task was given")
    entry = None
    if static:
        v = static_check(code, spec, limits)
        if not v.ok: return v
        entry = v.details.get("entry")
    preload = [*spec.preload, *([spec.check] if task is None else []), *([payload["validator"]] if "validator" in payload else [])]
    for p in preload: resolve(p)
    self.start()
    scratch = Path(tempfile.mkdtemp(prefix="job-", dir=self.root))
    try:
        req = dict(code=code, kind=spec.name, spec=asdict(spec), task=task, payload=payload, scratch=str(scratch),
                   read_roots=list(read_roots((str(scratch), *limits.read_paths))), require=list(required_layers(limits.require)),
                   max_stdout_chars=limits.max_stdout_chars, max_result_bytes=limits.max_result_bytes, mem_mb=limits.mem_mb,
                   cpu_s=limits.cpu_s, fsize_mb=limits.fsize_mb, wall_s=limits.wall_s, preload=preload + ([task] if task else []))
        self._send(req)
        reply = self._recv(limits.wall_s + 30, limits.max_result_bytes + (1 << 22))
        if reply is None:                                          # the server itself hangs or died: kill everything
            self.close()
            return fail_verdict("runtime", "timeout", f"wall-clock timeout after {limits.wall_s:g} s; the worker was killed", t0)
        layers = self.layers
        if reply["timed_out"]:
            return fail_verdict("runtime", "timeout", f"wall-clock timeout after {limits.wall_s:g} s: an infinite loop, a sleep or far too slow; the job was killed", t0, layers=layers)
        if reply["too_big"]: return fail_verdict("runtime", "output", f"the result is larger than {limits.max_result_bytes} bytes", t0, layers=layers)
        rc, stderr = reply["rc"], _tail(scratch / "stderr.txt")
        res = None
        if reply["result"] is not None:
            try: res = unpack(reply["result"].tobytes())
            except FrameError as e: return fail_verdict("runtime", "crash", f"unreadable result: {e}", t0, layers=layers)
        if not isinstance(res, dict):
            if rc < 0 and -rc in _SIGNALS:
                reason, msg = _SIGNALS[-rc]
                return fail_verdict("runtime", reason, msg.format(cpu=limits.cpu_s, fsize=limits.fsize_mb), t0, stderr=stderr, layers=layers)
            if "MemoryError" in stderr or "bad_alloc" in stderr:
                return fail_verdict("runtime", "memory", f"out of memory (the limit is {limits.mem_mb} MB of address space)", t0, stderr=stderr, layers=layers)
            return fail_verdict("runtime", "crash", f"the job exited with code {rc} without a result; stderr: {stderr[-300:]}", t0, stderr=stderr, layers=layers)
        details = dict(res.get("details") or {}) if res.get("ok") else {}
        details["layers"] = res.get("layers", layers)
        details["reason"] = str(res.get("reason", "exception")) if not res.get("ok") else "ok"
        if entry: details.setdefault("entry", entry)
        if not res.get("ok"): return Verdict(False, "runtime", short_text(res.get("message", "failed")), details, time.perf_counter() - t0)
        if task is None:
            try: _parent_recheck(spec, payload, details)
            except ContractError as e: return fail_verdict("runtime", "contract", f"parent re-check: {e}", t0, **details)
        return Verdict(True, "runtime", "ok", details, time.perf_counter() - t0)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

def run_in_sandbox(code: str, spec, task: str | None = None, payload: dict | None = None,
                   limits: Limits | None = None, static: bool = True, sandbox: Sandbox | None = None) -> Verdict:
    "Validate `code` (stage 1, unless `static=False`) and run the job (`task`, or the spec's check) in a limited worker; a `Verdict`."
    if sandbox is not None: return sandbox.run(code, spec, task, payload, limits, static)
    if static:
        v = static_check(code, spec, limits)
        if not v.ok: return v
    with Sandbox(limits) as sb: return sb.run(code, spec, task, payload, limits, static)

def validate(reply: str, spec, payload: dict | None = None, limits: Limits | None = None, sandbox: Sandbox | None = None) -> Verdict:
    "Extract the code from an LLM reply and run both stages with the spec's check; details['code'] holds the extracted source."
    code = extract_code(reply)
    v = run_in_sandbox(code, spec, payload=payload, limits=limits, sandbox=sandbox)
    v.details["code"] = code
    return v
