"""Type declarations for benchrun._core, the native core: use the benchrun package's API instead."""

from typing import Any, Callable, Optional

__version__: str

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
    progress: Optional[Callable[[str, str, int, int], None]] = None,
) -> dict[str, Any]: ...
def load_image(*, reference: str, store: str) -> dict[str, Any]: ...
def list_images(*, store: str) -> list[dict[str, Any]]: ...
def remove_image(*, reference: str, store: str) -> bool: ...
def prune(*, store: str) -> dict[str, int]: ...
def normalize_reference(text: str) -> str: ...
def host_platform() -> str: ...
def _raise_for_test(kind: str) -> None: ...
def run(
    *,
    image: str,
    store: str,
    entrypoint: Optional[list[str]] = None,
    command: Optional[list[str]] = None,
    env: list[str] = ...,
    workdir: Optional[str] = None,
    user: Optional[str] = None,
    memory: Optional[int] = None,
    pids_limit: Optional[int] = None,
    cpus: list[int] = ...,
    cpu_quota: Optional[float] = None,
    timeout: float = 0.0,
    outputs: list[str] = ...,
    max_output_bytes: int = ...,
    network: bool = False,
    cgroup_root: str = "/sys/fs/cgroup",
    hostname: str = "benchrun",
    backend: str = "sandbox",
    accel: str = "auto",
    kernel: str = "",
    vm_memory_mib: int = 0,
    init_binary: str = "",
    qemu: str = "qemu-system-x86_64",
    boot_timeout: float = 60.0,
    vm_cache: str = "",
    kernel_modules: str = "",
    should_stop: Optional[Callable[[], bool]] = None,
) -> dict[str, Any]: ...
def cleanup_leftovers(*, store: str, cgroup_root: str = "/sys/fs/cgroup") -> int: ...
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
