"""placeholder"""
from __future__ import annotations
import ctypes, json, os, platform, resource, struct, sys
from dataclasses import dataclass

import numpy as np

from ..core import SerlError

LAYERS = {
    "rlimits": "CPU seconds, address space, file size, open files, no core dumps (setrlimit; every Linux)",
    "seccomp": "a BPF syscall filter: no new processes (threads only), no exec, no sockets, no ptrace or other processes' "
               "memory, no mount/namespace/keyring/bpf/io_uring/kernel-module calls (needs seccomp filters, x86_64 or aarch64)",
    "landlock": "file system: read only the interpreter, its libraries, serl and the job's read-only roots; write only the "
                "scratch folder; no signals to processes outside the job; no TCP bind/connect (needs Landlock, Linux >= 5.13; "
                "signal scoping >= 6.12)",
    "userns": "a user namespace: the worker's root has no privileges on the host (needs unprivileged user namespaces)",
    "netns": "a network namespace with no interfaces: no network even through a syscall the filter missed",
    "pidns": "a PID namespace with its own /proc: the parent and every other host process are invisible (no /proc/<pid>/environ)",
    "mountns": "a private mount view in which the whole file tree is read-only except the worker's own folder",
}
DEFAULT_REQUIRED = ("rlimits", "seccomp", "landlock", "netns", "pidns", "mountns")

def required_layers(spec: str | tuple | None = None) -> tuple:
    "The layers a sandbox must have: `spec` (a tuple or 'a,b'), else `SERL_SANDBOX_REQUIRE`, else `DEFAULT_REQUIRED`; 'none' = no minimum."
    if spec is None: spec = os.environ.get("SERL_SANDBOX_REQUIRE", "")
    if isinstance(spec, str): spec = tuple(s.strip() for s in spec.split(",") if s.strip()) or (DEFAULT_REQUIRED if spec.strip() == "" else ())
    spec = tuple(spec)
    if spec in (("none",), ()): return ()
    if spec == ("all",): return tuple(LAYERS)
    bad = [s for s in spec if s not in LAYERS]
    if bad: raise SerlError(f"SERL_SANDBOX_REQUIRE / Limits.require: unknown isolation layer(s) {bad}; choose from {list(LAYERS)}, 'all' or 'none'")
    return spec

def check_layers(active, required) -> None:
    "Raise a `SerlError` naming what is missing and how to proceed, unless every `required` layer is `active`."
    missing = [l for l in required if l not in active]
    if missing:
        raise SerlError(f"sandbox: this host does not allow the isolation layer(s) {missing} (active: {sorted(active)}); "
                        f"{'; '.join(f'{m}: {LAYERS[m]}' for m in missing)}. Run on a host that allows them, or lower the "
                        f"minimum knowingly with SERL_SANDBOX_REQUIRE (e.g. SERL_SANDBOX_REQUIRE={','.join(l for l in required if l not in missing) or 'none'}); see README 'Sandbox isolation'")

_LIBC = None
def libc():
    "The C library (ctypes, errno kept); None where it cannot be loaded."
    global _LIBC
    if _LIBC is None:
        try: _LIBC = ctypes.CDLL(None, use_errno=True)
        except OSError: _LIBC = False
    return _LIBC or None

_ARCH = platform.machine()
_NR = {"x86_64": dict(landlock_create_ruleset=444, landlock_add_rule=445, landlock_restrict_self=446, mount_setattr=442, capset=126),
       "aarch64": dict(landlock_create_ruleset=444, landlock_add_rule=445, landlock_restrict_self=446, mount_setattr=442, capset=91)}.get(_ARCH, {})

def _syscall(name: str, *args) -> int:
    c = libc()
    if c is None or name not in _NR: return -1
    c.syscall.restype = ctypes.c_long
    return c.syscall(ctypes.c_long(_NR[name]), *args)

def _err(what: str) -> OSError:
    e = ctypes.get_errno()
    return OSError(e, f"{what}: {os.strerror(e)}")

PR_SET_NO_NEW_PRIVS, PR_SET_DUMPABLE, PR_SET_PDEATHSIG, PR_SET_SECCOMP = 38, 4, 1, 22

def prctl(option: int, arg: int = 0):
    c = libc()
    if c is None or c.prctl(option, ctypes.c_ulong(arg), 0, 0, 0) != 0: raise _err(f"prctl({option})")

def drop_capabilities():
    "Empty this process's effective, permitted and inheritable capability sets (capset(2))."
    hdr = struct.pack("Ii", 0x20080522, 0)
    data = ctypes.create_string_buffer(24)
    if _syscall("capset", ctypes.c_char_p(hdr), data) != 0: raise _err("capset")

_LL_FS_ALL = (1 << 16) - 1          # EXECUTE .. IOCTL_DEV (ABI 5); masked to what the kernel knows
_LL_READ = (1 << 2) | (1 << 3)      # READ_FILE | READ_DIR
_LL_FILE = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 14) | (1 << 15)   # access rights that apply to a file (not a dir)

def landlock_abi() -> int:
    "The kernel's Landlock ABI version (0: none)."
    r = _syscall("landlock_create_ruleset", None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(int(r), 0)

def _fs_mask(abi: int) -> int:
    m = (1 << 13) - 1
    if abi >= 2: m |= 1 << 13       # REFER
    if abi >= 3: m |= 1 << 14       # TRUNCATE
    if abi >= 5: m |= 1 << 15       # IOCTL_DEV
    return m

def landlock(read: tuple = (), write: tuple = (), write_files: tuple = ()) -> int:
    "Restrict this process (and its future children) to reading `read`, writing under `write` (and the files `write_files`); no TCP, no signals out. The ABI used."
    abi = landlock_abi()
    if abi < 1: raise OSError("landlock: not supported by this kernel")
    fs = _fs_mask(abi)
    net = 3 if abi >= 4 else 0                   # BIND_TCP | CONNECT_TCP: handled, never allowed
    scoped = 3 if abi >= 6 else 0                # abstract unix sockets, signals
    attr = struct.pack("QQQ", fs, net, scoped)[: 8 if abi < 4 else (16 if abi < 6 else 24)]
    buf = ctypes.create_string_buffer(attr, len(attr))
    fd = _syscall("landlock_create_ruleset", buf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if fd < 0: raise _err("landlock_create_ruleset")
    try:
        def rule(path, access):
            try: pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError: return                                   # a root that does not exist here
            try:
                if not os.path.isdir(path): access &= _LL_FILE
                r = struct.pack("=Qi", access & fs, pfd)
                if _syscall("landlock_add_rule", ctypes.c_int(fd), ctypes.c_int(1), ctypes.create_string_buffer(r, len(r)), ctypes.c_uint32(0)) != 0:
                    raise _err(f"landlock_add_rule {path}")
            finally: os.close(pfd)
        for p in read: rule(p, _LL_READ)
        for p in write: rule(p, fs)
        for p in write_files: rule(p, (1 << 1) | (1 << 2))
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        if _syscall("landlock_restrict_self", ctypes.c_int(fd), ctypes.c_uint32(0)) != 0: raise _err("landlock_restrict_self")
    finally: os.close(fd)
    return abi

_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_DENY = {   # syscalls a job never needs: processes, exec, sockets, other processes' memory, privileged kernel interfaces
    "x86_64": dict(fork=57, vfork=58, execve=59, execveat=322, ptrace=101, process_vm_readv=310, process_vm_writev=311,
                   socket=41, socketpair=53, mount=165, umount2=166, pivot_root=155, chroot=161, unshare=272, setns=308,
                   bpf=321, perf_event_open=298, keyctl=250, add_key=248, request_key=249, kexec_load=246, kexec_file_load=320,
                   init_module=175, finit_module=313, delete_module=176, reboot=169, swapon=167, swapoff=168, userfaultfd=323,
                   io_uring_setup=425, io_uring_enter=426, io_uring_register=427, open_tree=428, move_mount=429, fsopen=430,
                   fsconfig=431, fsmount=432, fspick=433, mount_setattr=442, pidfd_getfd=438, kcmp=312, open_by_handle_at=304,
                   name_to_handle_at=303, acct=163, setsid=112, setpgid=109, quotactl=179, syslog=103, iopl=172, ioperm=173),
    "aarch64": dict(execve=221, execveat=281, ptrace=117, process_vm_readv=270, process_vm_writev=271, socket=198,
                    socketpair=199, mount=40, umount2=39, pivot_root=41, chroot=51, unshare=97, setns=268, bpf=280,
                    perf_event_open=241, keyctl=219, add_key=217, request_key=218, kexec_load=104, kexec_file_load=294,
                    init_module=105, finit_module=273, delete_module=106, reboot=142, swapon=224, swapoff=225, userfaultfd=282,
                    io_uring_setup=425, io_uring_enter=426, io_uring_register=427, open_tree=428, move_mount=429, fsopen=430,
                    fsconfig=431, fsmount=432, fspick=433, mount_setattr=442, pidfd_getfd=438, kcmp=272, open_by_handle_at=265,
                    name_to_handle_at=264, acct=89, setsid=157, setpgid=154, quotactl=60, syslog=116)}
_CLONE, _CLONE3, _PRCTL = {"x86_64": (56, 435, 157), "aarch64": (220, 435, 167)}.get(_ARCH, (None, None, None))
_CLONE_THREAD = 0x00010000
_RET_ALLOW, _RET_EPERM, _RET_ENOSYS, _RET_KILL = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38, 0x80000000

def seccomp_supported() -> bool:
    "Whether `seccomp_filter` can install its filter here (the arch's syscall table is known and the kernel has seccomp)."
    return _ARCH in _DENY and os.path.exists("/proc/sys/kernel/seccomp/actions_avail") or (_ARCH in _DENY and libc() is not None)

def _bpf(code, jt, jf, k): return struct.pack("HBBI", code, jt, jf, k)

def seccomp_filter(allow_fork: bool = False):
    "Install the syscall filter on this process and its future children (EPERM for denied calls; clone only for threads)."
    if _ARCH not in _DENY: raise OSError(f"seccomp: no syscall table for {_ARCH}")
    LD, JEQ, JSET, RET, JGE = 0x20, 0x15, 0x45, 0x06, 0x35
    deny = dict(_DENY[_ARCH])
    if allow_fork: deny.pop("fork", None); deny.pop("vfork", None)
    body = [_bpf(LD, 0, 0, 0)]                                              # A = nr
    if _ARCH == "x86_64": body.append(_bpf(JGE, 0, 0, 0x40000000))          # x32 ABI: placeholder, patched below
    nrs = sorted(set(deny.values()))
    for nr in nrs: body.append(_bpf(JEQ, 0, 0, nr))                         # placeholders, patched below
    tail = []
    if not allow_fork:
        tail += [_bpf(JEQ, 0, 4, _CLONE), _bpf(LD, 0, 0, 16), _bpf(JSET, 1, 0, _CLONE_THREAD), _bpf(RET, 0, 0, _RET_EPERM),
                 _bpf(RET, 0, 0, _RET_ALLOW)]                                # clone: threads only
        tail += [_bpf(JEQ, 0, 1, _CLONE3), _bpf(RET, 0, 0, _RET_ENOSYS)]     # clone3 hides its flags: libc falls back to clone
    tail += [_bpf(JEQ, 0, 3, _PRCTL), _bpf(LD, 0, 0, 16), _bpf(JEQ, 0, 1, PR_SET_PDEATHSIG), _bpf(RET, 0, 0, _RET_EPERM),
             _bpf(RET, 0, 0, _RET_ALLOW)]
    # jumps to the EPERM return that follows the checks: compute offsets now that the lengths are known
    n_checks = len(body) - 1
    prog = [body[0]]
    for i, ins in enumerate(body[1:]):
        code, _, _, k = struct.unpack("HBBI", ins)
        dist = n_checks - 1 - i                                              # instructions to skip to land on the jump-over
        prog.append(_bpf(code, dist + 1, 0, k))                              # true: to the EPERM return; false: next check
    # after the checks: jump over the EPERM return into the tail (the accumulator still holds nr)
    prog += [_bpf(0x05, 0, 0, 1), _bpf(RET, 0, 0, _RET_EPERM)] + tail       # 0x05: ja +1
    head = [_bpf(LD, 0, 0, 4), _bpf(JEQ, 1, 0, _AUDIT_ARCH[_ARCH]), _bpf(RET, 0, 0, _RET_KILL)]
    prog = head + prog
    raw = b"".join(prog)
    buf = ctypes.create_string_buffer(raw, len(raw))
    class _Prog(ctypes.Structure): _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    fp = _Prog(len(prog), ctypes.cast(buf, ctypes.c_void_p))
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    c = libc()
    if c.prctl(PR_SET_SECCOMP, 2, ctypes.byref(fp), 0, 0) != 0: raise _err("seccomp")

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x20000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000
_MS_REC, _MS_PRIVATE, _MS_BIND, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 0x4000, 0x40000, 0x1000, 2, 4, 8

def _mount_setattr(path: str, set_: int, clr: int, recursive: bool):
    attr = struct.pack("QQQQ", set_, clr, 0, 0)
    if _syscall("mount_setattr", ctypes.c_int(-100), os.fsencode(path), ctypes.c_uint(0x8000 if recursive else 0),
                ctypes.create_string_buffer(attr, 32), ctypes.c_size_t(32)) != 0: raise _err(f"mount_setattr {path}")

def enter_namespaces(writable: str):
    "In a fresh child before exec: new user, mount, network, IPC, UTS namespaces and a PID namespace for its children; the file tree read-only except `writable`. Best effort: what the host refuses is left out (`active_layers` tells)."
    c, uid, gid = libc(), os.getuid(), os.getgid()
    if c is None: return
    base = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    if c.unshare(base | CLONE_NEWUSER) == 0:
        for f, s in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
            with open(f"/proc/self/{f}", "w") as fh: fh.write(s)
    elif c.unshare(base) != 0 and c.unshare(CLONE_NEWNET) != 0: return
    if c.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0: return
    w = os.fsencode(os.path.realpath(writable))
    if c.mount(w, w, None, _MS_BIND | _MS_REC, None) != 0: return
    try: _mount_setattr("/", 1, 0, True); _mount_setattr(os.fsdecode(w), 0, 1, False)   # MOUNT_ATTR_RDONLY
    except OSError: pass

def start_pid_init() -> bool:
    "In the worker, whose children live in a new PID namespace: fork the namespace's init (it mounts a /proc of the namespace, then reaps orphans); whether /proc is the namespace's."
    try:                                    # the link is empty (ENOENT) until the new namespace's first child exists
        if os.readlink("/proc/self/ns/pid") == os.readlink("/proc/self/ns/pid_for_children"): return False
    except FileNotFoundError: pass
    r, w = os.pipe()
    if os.fork() == 0:
        try:
            os.close(r)
            prctl(PR_SET_PDEATHSIG, 9)
            c = libc()
            ok = c.mount(b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None) == 0
            os.write(w, b"1" if ok else b"0"); os.close(w)
            for fd in range(3): os.close(fd)
            while True:
                try: os.waitpid(-1, 0)
                except ChildProcessError: import time; time.sleep(3600)
        finally: os._exit(0)
    os.close(w)
    ok = os.read(r, 1) == b"1"; os.close(r)
    return ok

def _net_isolated() -> bool:
    import socket
    try: return [n for _, n in socket.if_nameindex()] in ([], ["lo"])
    except OSError: return True

def in_user_namespace() -> bool:
    "Whether this process is in a user namespace other than the host's (read before /proc is replaced)."
    try: return open("/proc/self/uid_map").read().split() != ["0", "0", "4294967295"]
    except OSError: return False

def worker_layers(userns: bool, proc_ok: bool, root: str) -> list:
    "The namespace layers this worker process is in (checked, not assumed)."
    out = ["userns"] if userns else []
    if _net_isolated(): out.append("netns")
    if proc_ok: out.append("pidns")
    if os.statvfs("/").f_flag & os.ST_RDONLY and not os.statvfs(root).f_flag & os.ST_RDONLY: out.append("mountns")
    return out

class FrameError(SerlError):
    "A frame on a sandbox channel was truncated, too large or malformed."

def write_frame(fd: int, data: bytes):
    "Length-prefixed write of `data` (8-byte big-endian length) on a raw file descriptor."
    view = memoryview(struct.pack(">Q", len(data)) + data)
    while view: view = view[os.write(fd, view):]

def _read_exact(fd: int, n: int) -> bytes:
    parts, left = [], n
    while left:
        b = os.read(fd, min(left, 1 << 20))
        if not b: raise EOFError("channel closed")
        parts.append(b); left -= len(b)
    return b"".join(parts)

def read_frame(fd: int, cap: int) -> bytes:
    "One frame from `fd`; `FrameError` if it announces more than `cap` bytes, `EOFError` if the writer is gone."
    n = struct.unpack(">Q", _read_exact(fd, 8))[0]
    if n > cap: raise FrameError(f"a frame of {n} bytes; the limit is {cap}")
    return _read_exact(fd, n)

def pack(obj) -> bytes:
    "Plain data (None, bool, int, float, str, list, tuple, dict, numpy arrays and scalars, torch tensors, numpy Generators) as bytes: a JSON header, then the arrays' raw bytes. Nothing is pickled."
    arrays = []
    def enc(x):
        if x is None or isinstance(x, (bool, int, float, str)): return x
        if isinstance(x, (list, tuple)): return {"$l" if isinstance(x, list) else "$u": [enc(v) for v in x]}
        if isinstance(x, dict): return {"$d": [[enc(k), enc(v)] for k, v in x.items()]}
        if isinstance(x, np.generic): x = np.asarray(x); arrays.append(x); return {"$s": len(arrays) - 1}
        if isinstance(x, np.ndarray):
            if x.dtype.kind not in "biufc": raise TypeError(f"cannot pass an array of dtype {x.dtype} across the sandbox boundary")
            arrays.append(np.ascontiguousarray(x)); return {"$a": len(arrays) - 1}
        if isinstance(x, np.random.Generator): return {"$g": enc(x.bit_generator.state)}
        mod = type(x).__module__
        if mod.startswith("torch"):
            import torch
            if torch.is_tensor(x):
                t = x.detach().cpu()
                arrays.append(t.numpy() if t.dtype != torch.bfloat16 else t.float().numpy())
                return {"$t": len(arrays) - 1, "g": bool(x.requires_grad)}
            if isinstance(x, torch.dtype): return {"$y": str(x).removeprefix("torch.")}
            if isinstance(x, torch.Size): return {"$u": [int(v) for v in x]}
        if isinstance(x, slice): return {"$sl": [enc(x.start), enc(x.stop), enc(x.step)]}
        if x is Ellipsis: return {"$e": 1}
        raise TypeError(f"cannot pass a {type(x).__name__} across the sandbox boundary")
    head = json.dumps(enc(obj), allow_nan=True).encode()
    meta = json.dumps([[a.dtype.str, list(a.shape)] for a in arrays]).encode()
    return struct.pack(">QQ", len(head), len(meta)) + head + meta + b"".join(a.tobytes() for a in arrays)

def unpack(data: bytes):
    "The object `pack` encoded (arrays are fresh, writable copies; tensors come back as tensors)."
    try:
        nh, nm = struct.unpack(">QQ", data[:16])
        head, meta = json.loads(data[16:16 + nh]), json.loads(data[16 + nh:16 + nh + nm])
        arrays, off = [], 16 + nh + nm
        for dt, shape in meta:
            dt = np.dtype(dt)
            if dt.kind not in "biufc": raise FrameError(f"dtype {dt} is not allowed")
            n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
            if off + n > len(data): raise FrameError("truncated array data")
            arrays.append(np.frombuffer(data, dt, int(np.prod(shape, dtype=np.int64)), off).reshape(shape).copy()); off += n
    except (ValueError, struct.error, TypeError) as e: raise FrameError(f"malformed frame: {e}") from None
    def dec(x):
        if isinstance(x, list): raise FrameError("malformed frame: bare list")
        if not isinstance(x, dict): return x
        (k, v), *rest = x.items()
        if k == "$l": return [dec(i) for i in v]
        if k == "$u": return tuple(dec(i) for i in v)
        if k == "$d": return {dec(a): dec(b) for a, b in v}
        if k == "$a": return arrays[v]
        if k == "$s": return arrays[v][()]
        if k == "$t":
            import torch
            t = torch.from_numpy(arrays[v])
            return t.requires_grad_() if x.get("g") and t.is_floating_point() else t
        if k == "$g":
            st = dec(v)
            bg = getattr(np.random, str(st.get("bit_generator", "")), None)
            if bg is None or not isinstance(bg, type) or not issubclass(bg, np.random.BitGenerator): raise FrameError("unknown bit generator")
            b = bg(); b.state = st
            return np.random.Generator(b)
        if k == "$y":
            import torch
            d = getattr(torch, str(v), None)
            if not isinstance(d, torch.dtype): raise FrameError(f"unknown dtype {v!r}")
            return d
        if k == "$sl": return slice(*(dec(i) for i in v))
        if k == "$e": return Ellipsis
        raise FrameError(f"malformed frame: tag {k!r}")
    return dec(head)

def set_rlimits(cpu_s: int | None = None, mem_mb: int | None = None, fsize_mb: int | None = None, nofile: int | None = None,
                nproc: int | None = None):
    "Lower this process's rlimits (never above an inherited hard limit unless root); None leaves one alone. Core dumps off."
    mb = 1 << 20
    for res, v in ((resource.RLIMIT_CPU, cpu_s and (cpu_s, cpu_s + 1)), (resource.RLIMIT_AS, mem_mb and (mem_mb * mb,) * 2),
                   (resource.RLIMIT_FSIZE, fsize_mb and (fsize_mb * mb,) * 2), (resource.RLIMIT_NOFILE, nofile and (nofile, nofile)),
                   (resource.RLIMIT_NPROC, nproc and (nproc, nproc)), (resource.RLIMIT_CORE, (0, 0))):
        if not v: continue
        soft, hard = v
        cur = resource.getrlimit(res)[1]
        if os.getuid() != 0 and cur != resource.RLIM_INFINITY: hard = min(hard, cur)
        try: resource.setrlimit(res, (min(soft, hard), hard))
        except (ValueError, OSError): pass
