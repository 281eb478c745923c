"""Type declarations for benchrun._core, the native core: use the benchrun package's API instead."""

from typing import Any, Callable, Optional

__version__: str
UNLIMITED: int

def pull(
    *,
    source: str,
    store: str,
    platform: Optional[str] = None,
    insecure_registries: list[str] = ...,
    username: Optional[str] = None,
    password: Optional[str] = None,
    registry_token: Optional[str] = None,
    identity_token: Optional[str] = None,
    docker_config: str = "",
    credential_helper_dir: str = "",
    ca_file: str = "",
    max_attempts: int = 5,
    backoff_initial_ms: int = 200,
    backoff_max_ms: int = 10000,
    max_parallel: int = 4,
    unpack: bool = True,
    preserve_ownership: bool = True,
    gzip_engine: str = "isal",
    max_entries: int = ...,
    max_layer_bytes: int = ...,
    max_image_ratio: int = ...,
    max_image_bytes: int = ...,
    min_free_bytes: int = ...,
    progress: Optional[Callable[[str, str, int, int], None]] = None,
) -> dict[str, Any]: ...
def load_image(*, reference: str, store: str) -> dict[str, Any]: ...
def list_images(*, store: str) -> list[dict[str, Any]]: ...
def remove_image(*, reference: str, store: str) -> bool: ...
def prune(*, store: str) -> dict[str, int]: ...
def normalize_reference(text: str) -> str: ...
def host_platform() -> str: ...
def _raise_for_test(kind: str) -> None: ...

class RunSpec:
    """The options of one run (run/spec.hpp BENCHRUN_RUN_OPTIONS); validate() checks every rule."""

    OPTIONS: tuple[tuple[str, str, str], ...]  # (name, backend scope or "", doc)
    backend: str
    entrypoint: Optional[list[str]]
    command: Optional[list[str]]
    env: list[str]
    workdir: Optional[str]
    user: Optional[str]
    memory: Optional[int]
    pids_limit: Optional[int]
    disk: Optional[int]
    cpus: list[int]
    cpu_count: Optional[int]
    cpu_wait: float
    cpu_quota: Optional[float]
    timeout: float
    outputs: list[str]
    max_output_bytes: int
    max_file_bytes: int
    max_files: int
    nofile: int
    network: bool
    hostname: str
    accel: str
    kernel: str
    kernel_modules: str
    vm_memory: Optional[int]
    instructions: str
    counters: Optional[list[str]]
    rootless: Optional[bool]
    def __init__(self) -> None: ...
    def validate(self) -> None: ...

class RunImage:
    digest: str
    chain_id: str
    rootfs: str

def load_run_image(*, store: str, reference: str) -> RunImage: ...
def backends() -> list[str]: ...
def backend_unavailable(name: str) -> str: ...
def run(
    *,
    image: RunImage,
    spec: RunSpec,
    store: str,
    cgroup_root: str = "/sys/fs/cgroup",
    vm_cache: str = "",
    init_binary: str = "",
    qemu: str = "qemu-system-x86_64",
    boot_timeout: float = 60.0,
    should_stop: Optional[Callable[[], bool]] = None,
    meminfo: str = "/proc/meminfo",
    cgroup_parent: str = "benchrun",
    cpu_lock_dir: str = "/run/benchrun/cpus",
    valgrind_dir: str = "/usr/libexec/valgrind",
    valgrind_launcher: str = "",
    pid1_binary: str = "",
    secrets: list[tuple[str, bytes]] = [],
) -> dict[str, Any]: ...
def cleanup_leftovers(
    *, store: str, cgroup_root: str = "/sys/fs/cgroup", cgroup_parent: str = "benchrun"
) -> int: ...
def partition_create(
    *,
    cpus: list[int],
    require_exclusive: bool = True,
    isolated: bool = True,
    root: str = "/sys/fs/cgroup",
    name: str = "benchrun",
    version: str = "",
    online: str = "/sys/devices/system/cpu/online",
) -> dict[str, Any]: ...
def partition_remove(
    *,
    root: str = "/sys/fs/cgroup",
    name: str = "benchrun",
    version: str = "",
    online: str = "/sys/devices/system/cpu/online",
) -> None: ...
def partition_status(
    *,
    root: str = "/sys/fs/cgroup",
    name: str = "benchrun",
    version: str = "",
    online: str = "/sys/devices/system/cpu/online",
) -> dict[str, Any]: ...
def parse_cpu_list(text: str, what: str = "cpus") -> list[int]: ...
def cpu_holder(cpu: int, *, lock_dir: str = "/run/benchrun/cpus") -> str: ...
def resolve_digest(
    *,
    reference: str,
    insecure_registries: list[str] = ...,
    username: Optional[str] = None,
    password: Optional[str] = None,
    registry_token: Optional[str] = None,
    docker_config: str = "",
    ca_file: str = "",
) -> dict[str, str]: ...
