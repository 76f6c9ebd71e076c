"""`edgetui doctor`: one line per finding, each failing one with its fix.

Native code is only touched in child processes (system info in a subprocess, the crash probe in the
engine's child), so a bad llama.cpp build is reported, not suffered.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from edgetui import __version__
from edgetui.config import ConfigError, Paths, paths, sysfs_root
from edgetui.engine.base import EngineCrashed, EngineError, GenParams

# llama.cpp system-info names -> /proc/cpuinfo flags
CPU_FLAGS = {"AVX": "avx", "AVX2": "avx2", "FMA": "fma", "F16C": "f16c", "BMI2": "bmi2",
             "AVX512": "avx512f", "AVX512_VNNI": "avx512_vnni", "AVX_VNNI": "avx_vnni"}


REBUILD = ("rebuild llama-cpp-python for this CPU: rm -f .venv/.llama-key && make setup "
           "(tools/build_llama.sh enables only the extensions /proc/cpuinfo reports)")


@dataclass
class Finding:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warn: bool = False

    def line(self) -> str:
        mark = "ok  " if self.ok and not self.warn else ("warn" if self.ok else "FAIL")
        tail = f" — fix: {self.fix}" if self.fix and (not self.ok or self.warn) else ""
        return f"[{mark}] {self.name}: {self.detail}{tail}"


def check_python() -> Finding:
    ok = sys.version_info >= (3, 11)
    return Finding("python", ok, platform.python_version(), "use Python 3.11 or newer")


def check_llama_build() -> list[Finding]:
    try:
        ver = importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        return [Finding("llama-cpp-python", False, "not installed", "run `make setup`")]
    code = "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return [Finding("llama-cpp-python", False, f"{ver} fails to load (exit {r.returncode})",
                        REBUILD)]
    info = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    built = [k for k, v in CPU_FLAGS.items() if f"{k} = 1" in info]
    out = [Finding("llama-cpp-python", True, f"{ver}; built with {', '.join(built) or 'no SIMD flags'}")]
    cpu = _cpu_flags()
    if cpu:
        missing = [k for k in built if CPU_FLAGS[k] not in cpu]
        detail = (f"build uses {', '.join(missing)} which this CPU does not report" if missing
                  else "all build features present")
        # an instruction the CPU lacks is a SIGILL waiting for the first kernel that uses it
        out.append(Finding("cpu features", not missing, detail, REBUILD if missing else ""))
    return out


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def check_data_dir(p: Paths) -> Finding:
    try:
        p.ensure()
    except ConfigError as e:
        return Finding("data dir", False, str(e).split(":")[0], "set EDGETUI_HOME to a writable directory")
    return Finding("data dir", True, str(p.home))


def check_bundle(p: Paths):
    from edgetui.session import active_bundle

    try:
        b = active_bundle(p)
    except Exception as e:  # any failure to open the store is a finding, not a crash
        return Finding("active bundle", False, str(e), "run `edgetui bundle list` or reinstall the bundle"), None
    problems = b.verify()
    if problems:
        return Finding("active bundle", False, f"{b.ref} does not verify: {problems[0]}",
                       "reinstall the bundle or `edgetui bundle rollback`"), None
    return Finding("active bundle", True, f"{b.ref} verifies ({len(b.manifest.files)} files)"), b


def check_sensors() -> Finding:
    root = sysfs_root()
    found = []
    if list((root / "sys/class/thermal").glob("thermal_zone*")):
        found.append("thermal zones")
    if list((root / "sys/devices/system/cpu").glob("cpu*/cpufreq/scaling_cur_freq")):
        found.append("cpufreq")
    if list((root / "sys/class/powercap").glob("*/energy_uj")):
        found.append("RAPL")
    try:
        import pynvml

        pynvml.nvmlInit()
        found.append(f"NVML ({pynvml.nvmlDeviceGetCount()} GPU)")
        pynvml.nvmlShutdown()
    except Exception:  # no driver or no GPU: NVML is optional
        pass
    detail = ", ".join(found) if found else "none (values will show n/a)"
    return Finding("sensors", True, f"psutil + {detail}")


def check_crash_probe(bundle) -> Finding:
    eng = bundle.engine(timeout_s=120)
    try:
        text, stats = eng.complete(bundle.chat_prompt("Say OK."), GenParams(max_tokens=8))
    except EngineCrashed as e:
        return Finding("crash probe", False, f"engine child {e}",
                       REBUILD)
    except EngineError as e:
        return Finding("crash probe", False, str(e), "reinstall the active bundle")
    finally:
        eng.close()
    return Finding("crash probe", True, f"{stats.decode_tokens} tokens, TTFT {stats.ttft_ms:.0f} ms, "
                   f"{stats.decode_tps:.1f} tok/s in a child process")


def run_checks(p: Paths | None = None) -> list[Finding]:
    p = p or paths()
    out = [check_python(), Finding("edgetui", True, __version__), *check_llama_build(), check_data_dir(p)]
    if out[-1].ok:
        f, bundle = check_bundle(p)
        out.append(f)
        if bundle is not None:
            out.append(check_crash_probe(bundle))
    out.append(check_sensors())
    return out
