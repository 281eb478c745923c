"""What a campaign is: frozen, validated Variant and Campaign dataclasses, built in Python, from a
matrix (images x commands x configs) or from a TOML file (docs/campaigns.md). Unknown keys are
rejected with ConfigError; nothing here does any work."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Optional, Sequence, Union

from benchrun.errors import ConfigError
from benchrun.options import argv as _argv
from benchrun.options import BY_NAME, JOB_OPTIONS, OPTIONS, backends, parse_env, parse_memory

if TYPE_CHECKING:
    from benchrun.campaign.runner import CampaignResult

DEFAULT_STORE = "benchrun-results.db"
# The run options a Variant has as fields (what a job server can run too); every other option of
# the run option table (benchrun.options.OPTIONS) goes into Variant.options.
VARIANT_FIELDS = ("command",) + JOB_OPTIONS
# What a matrix config (and a [[variant]] table, besides name and image) may set: every run
# option, and the metric sources.
CONFIG_KEYS = tuple(dict.fromkeys(VARIANT_FIELDS + tuple(o.name for o in OPTIONS) + ("metrics",)))

ArgvLike = Union[str, Sequence[str], None]


def _check_keys(doc: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    unknown = sorted(set(doc) - set(allowed))
    if "secrets" in unknown:  # a campaign is stored whole: the values would be kept in clear
        raise ConfigError(
            f"{where}: 'secrets': campaigns cannot carry secrets yet (their spec is stored in the "
            'results store); see docs/security.md "Secrets"'
        )
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )


def _whole(value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{what} {value!r}: expected a whole number")
    if value < minimum:
        raise ConfigError(f"{what} {value}: must be at least {minimum}")
    return value


@dataclass(frozen=True)
class Variant:
    """One thing to measure: an image, its command and how to run it. ``metrics`` are
    benchrun.metrics sources ("result", "stdout:bmf", "file:/abs/path:bmf", "auto", ...)."""

    name: str
    image: str
    command: Optional[tuple[str, ...]] = None
    entrypoint: Optional[tuple[str, ...]] = None
    env: Mapping[str, str] = field(default_factory=dict)
    backend: str = "sandbox"
    vcpus: Optional[int] = None
    memory: Optional[int] = None  # bytes (a size like "512m" is accepted and converted)
    timeout: Optional[float] = None  # seconds
    outputs: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ("auto",)
    # Any other run option of the table (pids_limit, cpu_quota, user, accel, ...), as given.
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise the inputs once, here
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"variant name {self.name!r}: expected a non-empty string")
        where = f"variant '{self.name}'"
        if not isinstance(self.image, str) or not self.image:
            raise ConfigError(f"{where}: image {self.image!r}: expected a reference")
        set_(self, "command", _argv(self.command, f"{where}: command"))
        set_(self, "entrypoint", _argv(self.entrypoint, f"{where}: entrypoint"))
        if not isinstance(self.env, Mapping):
            # A list of K=V is accepted too; stored as a dict so the spec is plain JSON.
            pairs = parse_env(self.env, caller_env={})
            set_(self, "env", dict(p.split("=", 1) for p in pairs))
        else:
            parse_env(self.env)  # checks names and values
            set_(self, "env", dict(self.env))
        if self.backend not in backends():
            raise ConfigError(
                f"{where}: backend {self.backend!r}: unknown (choose " f"{', '.join(backends())})"
            )
        if self.vcpus is not None:
            _whole(self.vcpus, f"{where}: vcpus", 1)
        if self.memory is not None:
            set_(self, "memory", parse_memory(self.memory))
        if self.timeout is not None:
            if (
                isinstance(self.timeout, bool)
                or not isinstance(self.timeout, (int, float))
                or not math.isfinite(self.timeout)
                or self.timeout <= 0
            ):
                raise ConfigError(f"{where}: timeout {self.timeout!r}: expected positive seconds")
            set_(self, "timeout", float(self.timeout))
        if isinstance(self.outputs, (str, bytes)):
            raise ConfigError(f"{where}: outputs: expected a list of paths, not a single string")
        outs = tuple(self.outputs)
        for p in outs:
            if not isinstance(p, str) or not p.startswith("/"):
                raise ConfigError(f"{where}: output {p!r}: must be an absolute path in the image")
        set_(self, "outputs", outs)
        if isinstance(self.metrics, str):
            set_(self, "metrics", (self.metrics,))
        mets = tuple(self.metrics)
        if not mets or not all(isinstance(m, str) and m for m in mets):
            raise ConfigError(
                f"{where}: metrics {list(mets)!r}: expected a list of sources "
                "such as 'auto', 'result', 'stdout:bmf'"
            )
        set_(self, "metrics", mets)
        if not isinstance(self.options, Mapping):
            raise ConfigError(f"{where}: options: expected a table of run options")
        for key, value in self.options.items():
            if key == "secrets":
                _check_keys({key: value}, (), where)  # refused as campaigns refuse them
            if key not in BY_NAME or key in VARIANT_FIELDS:
                raise ConfigError(
                    f"{where}: option '{key}': not a run option (or one with its own field)"
                )
            BY_NAME[key].parse(value, f"{where}: {key}")  # a bad value fails here, before a run
        set_(self, "options", dict(self.options))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (the form stored in the results store and accepted by from_dict)."""
        return {
            "name": self.name,
            "image": self.image,
            "command": list(self.command) if self.command is not None else None,
            "entrypoint": list(self.entrypoint) if self.entrypoint is not None else None,
            "env": dict(self.env),
            "backend": self.backend,
            "vcpus": self.vcpus,
            "memory": self.memory,
            "timeout": self.timeout,
            "outputs": list(self.outputs),
            "metrics": list(self.metrics),
            **({"options": dict(self.options)} if self.options else {}),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], where: str = "variant") -> "Variant":
        """A variant from to_dict()'s form, or from a table that sets run options directly
        (``pids_limit = 64`` next to ``image``)."""
        _check_keys(doc, [f.name for f in fields(cls)] + list(CONFIG_KEYS), where)
        for key in ("name", "image"):
            if key not in doc:
                raise ConfigError(f"{where}: '{key}' is required")
        return cls(**_split_options(doc))


def _split_options(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Variant's keyword arguments: its own fields as they are, other run options in options."""
    own = {f.name for f in fields(Variant)}
    out = {k: v for k, v in doc.items() if k in own}
    extra = {k: v for k, v in doc.items() if k not in own}
    if extra:
        out["options"] = {**dict(out.get("options") or {}), **extra}
    return out


def _image_labels(images: Union[Mapping[str, str], Sequence[str]]) -> dict[str, str]:
    if isinstance(images, Mapping):
        return dict(images)
    if isinstance(images, str):
        images = [images]
    labels: dict[str, str] = {}
    for ref in images:
        if not isinstance(ref, str) or not ref:
            raise ConfigError(f"matrix images: {ref!r} is not an image reference")
        # The last path component ("app:1" of "registry:5000/bench/app:1") reads well in names.
        base = ref.rstrip("/").rsplit("/", 1)[-1] or ref
        label, n = base, 2
        while label in labels:
            label, n = f"{base}-{n}", n + 1
        labels[label] = ref
    return labels


def _matrix_variants(
    images: Union[Mapping[str, str], Sequence[str]],
    commands: Union[Mapping[str, ArgvLike], Sequence[ArgvLike], None],
    configs: Optional[Mapping[str, Mapping[str, Any]]],
) -> list[Variant]:
    imgs = _image_labels(images)
    if not imgs:
        raise ConfigError("matrix: at least one image is required")
    if commands is None:
        cmds: dict[str, ArgvLike] = {}
    elif isinstance(commands, Mapping):
        cmds = dict(commands)
    else:
        cmds = {f"cmd{i}": c for i, c in enumerate(commands)}
    cfgs = dict(configs or {})
    for label, cfg in cfgs.items():
        if not isinstance(cfg, Mapping):
            raise ConfigError(f"matrix config '{label}': expected a table of options")
        _check_keys(cfg, CONFIG_KEYS, f"matrix config '{label}'")
        if "command" in cfg and cmds:
            raise ConfigError(
                f"matrix config '{label}': sets 'command' and the matrix has "
                "commands; give the command in one place"
            )
    named: tuple[tuple[str, Mapping[str, Any]], ...] = (
        ("image", imgs),
        ("command", cmds),
        ("config", cfgs),
    )
    for what, labels in named:
        for label in labels:
            if not isinstance(label, str) or not label or "/" in label:
                raise ConfigError(f"matrix {what} label {label!r}: expected a name without '/'")
    variants = []
    # An omitted dimension is left out of the names: "img/cmd/cfg", "img/cfg", "img/cmd", "img".
    cmd_items: list[tuple[Optional[str], ArgvLike]] = list(cmds.items()) or [(None, None)]
    cfg_items: list[tuple[Optional[str], Mapping[str, Any]]] = list(cfgs.items()) or [(None, {})]
    for (il, ref), (cl, cmd), (fl, cfg) in itertools.product(imgs.items(), cmd_items, cfg_items):
        name = "/".join(x for x in (il, cl, fl) if x is not None)
        opts = dict(cfg)
        if cl is not None:
            opts["command"] = cmd
        variants.append(Variant(name=name, image=ref, **_split_options(opts)))
    return variants


@dataclass(frozen=True)
class Campaign:
    """A campaign: variants x repetitions, with ``warmup`` unmeasured-but-stored runs per variant
    first, in an order shuffled per round from ``seed``; results go to the SQLite ``store``.

    ``repetitions="auto"`` with ``detect`` (a relative change, 0.02 = 2 %): the number of rounds
    is chosen when the campaign first runs, from the host's stored noise figure (`benchrun host
    noise`, benchrun.noise): the fewest repetitions that detect that change at 95 % confidence
    and 80 % power (Campaign.auto_repetitions). Run locally, each variant first runs ``pilot``
    times (default 5; 0: none; not stored as runs) and the count is the larger of the noise
    figure's and the one the pilot's wall-time CVs ask for: the workload's own variance counts
    too. The store records the number chosen, so a resumed campaign keeps it.

    ``variants`` is a list of Variant (or of their dicts), or a matrix: a dict with ``images``
    and optional ``commands``/``configs`` (see Campaign.matrix)."""

    name: str
    variants: tuple[Variant, ...]
    repetitions: Union[int, str] = 10  # or "auto" (then ``detect`` is required)
    warmup: int = 1
    seed: int = 0
    store: str = DEFAULT_STORE
    detect: Optional[float] = None
    pilot: int = 5  # with repetitions="auto": runs per variant that size the campaign

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"campaign name {self.name!r}: expected a non-empty string")
        vs: Any = self.variants
        if isinstance(vs, Mapping):
            _check_keys(vs, ("images", "commands", "configs"), "matrix")
            if "images" not in vs:
                raise ConfigError("matrix: 'images' is required")
            vs = _matrix_variants(vs["images"], vs.get("commands"), vs.get("configs"))
        out = []
        for i, v in enumerate(vs):
            if isinstance(v, Mapping):
                v = Variant.from_dict(v, f"variant {i + 1}")
            if not isinstance(v, Variant):
                raise ConfigError(f"variant {i + 1}: expected a Variant, got {type(v).__name__}")
            out.append(v)
        if not out:
            raise ConfigError(f"campaign '{self.name}': no variants")
        seen: set[str] = set()
        for v in out:
            if v.name in seen:
                raise ConfigError(f"campaign '{self.name}': two variants are named '{v.name}'")
            seen.add(v.name)
        object.__setattr__(self, "variants", tuple(out))
        if self.repetitions == "auto":
            d = self.detect
            if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 < d < 1:
                raise ConfigError(
                    f"detect {d!r}: repetitions='auto' needs the relative change to detect, "
                    "between 0 and 1 (detect=0.02 for 2 %)"
                )
            object.__setattr__(self, "detect", float(d))
            if _whole(self.pilot, "pilot", 0) in (1, 2):
                raise ConfigError(f"pilot {self.pilot}: 0 (none) or at least 3 runs")
        else:
            if isinstance(self.repetitions, str):
                raise ConfigError(
                    f"repetitions {self.repetitions!r}: expected a whole number or 'auto'"
                )
            _whole(self.repetitions, "repetitions", 1)
            if self.detect is not None:
                raise ConfigError("detect: only used with repetitions='auto'")
        _whole(self.warmup, "warmup", 0)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"seed {self.seed!r}: expected a whole number")
        if not isinstance(self.store, (str, os.PathLike)) or not os.fspath(self.store):
            raise ConfigError(f"store {self.store!r}: expected a file path")
        object.__setattr__(self, "store", os.fspath(self.store))

    # --- constructors ---
    @classmethod
    def matrix(
        cls,
        name: str,
        images: Union[Mapping[str, str], Sequence[str]],
        commands: Union[Mapping[str, ArgvLike], Sequence[ArgvLike], None] = None,
        configs: Optional[Mapping[str, Mapping[str, Any]]] = None,
        *,
        repetitions: Union[int, str] = 10,
        warmup: int = 1,
        seed: int = 0,
        store: Union[str, os.PathLike[str]] = DEFAULT_STORE,
        detect: Optional[float] = None,
        pilot: int = 5,
    ) -> "Campaign":
        """The cartesian product images x commands x configs, as variants named
        "img/cmd/cfg" (a dimension that is not given is left out of the name). ``images`` is
        {label: ref} or a list of refs (labelled by their last path component); ``commands``
        {label: argv} or a list (labelled cmd0, cmd1, ...); ``configs`` {label: {backend, vcpus,
        memory, env, timeout, entrypoint, outputs, metrics}}."""
        return cls(
            name,
            _matrix_variants(images, commands, configs),  # type: ignore[arg-type]
            repetitions=repetitions,
            warmup=warmup,
            seed=seed,
            store=os.fspath(store),
            detect=detect,
            pilot=pilot,
        )

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], base_dir: Optional[Path] = None) -> "Campaign":
        """From the TOML document's structure: {campaign: {...}, variant: [...], matrix: {...}}.
        A relative ``store`` is taken relative to ``base_dir`` (the TOML file's directory)."""
        _check_keys(doc, ("campaign", "variant", "matrix"), "campaign file")
        head = doc.get("campaign")
        if not isinstance(head, Mapping):
            raise ConfigError("campaign file: a [campaign] table with a name is required")
        _check_keys(
            head,
            ("name", "repetitions", "warmup", "seed", "store", "detect", "pilot"),
            "[campaign]",
        )
        if "name" not in head:
            raise ConfigError("[campaign]: 'name' is required")
        tables = doc.get("variant", [])
        if not isinstance(tables, list):
            raise ConfigError("variant: expected [[variant]] tables")
        variants = [Variant.from_dict(t, f"[[variant]] {i + 1}") for i, t in enumerate(tables)]
        if "matrix" in doc:
            m = doc["matrix"]
            if not isinstance(m, Mapping):
                raise ConfigError("matrix: expected a [matrix] table")
            _check_keys(m, ("images", "commands", "configs"), "[matrix]")
            if "images" not in m:
                raise ConfigError("[matrix]: 'images' is required")
            variants += _matrix_variants(m["images"], m.get("commands"), m.get("configs"))
        store = str(head.get("store", DEFAULT_STORE))
        if base_dir is not None and not os.path.isabs(store):
            store = str(base_dir / store)
        return cls(
            name=head["name"],
            variants=tuple(variants),
            repetitions=head.get("repetitions", 10),
            warmup=head.get("warmup", 1),
            seed=head.get("seed", 0),
            store=store,
            detect=head.get("detect"),
            pilot=head.get("pilot", 5),
        )

    @classmethod
    def from_toml(cls, path: Union[str, os.PathLike[str]]) -> "Campaign":
        """Reads a campaign file (docs/campaigns.md). ConfigError on syntax or unknown keys."""
        p = Path(path)
        try:
            with open(p, "rb") as f:
                doc = tomllib.load(f)
        except OSError as e:
            raise ConfigError(f"read campaign file '{p}': {e.strerror or e}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"campaign file '{p}': {e}") from None
        try:
            return cls.from_dict(doc, base_dir=p.resolve().parent)
        except ConfigError as e:
            raise ConfigError(f"campaign file '{p}': {e}") from None

    # --- identity ---
    def to_dict(self) -> dict[str, Any]:
        """What defines the measurements (the store's location is not part of it). ``detect``
        and ``pilot`` for "auto" campaigns only, so the ids of the others are what they were."""
        d: dict[str, Any] = {
            "name": self.name,
            "variants": [v.to_dict() for v in self.variants],
            "repetitions": self.repetitions,
            "warmup": self.warmup,
            "seed": self.seed,
        }
        if self.repetitions == "auto":
            d["detect"] = self.detect
            d["pilot"] = self.pilot
        return d

    def auto_repetitions(
        self, noise: Optional[Mapping[str, Any]] = None, pilot_cv: Optional[float] = None
    ) -> int:
        """The repetitions to run: the fixed number, or for "auto" the fewest that detect a
        ``detect`` change given the host's noise figure (``noise``, a noise.json document;
        default: the stored one, ConfigError saying to run `benchrun host noise` if none), and
        at least as many as the pilot's CV (``pilot_cv``, the largest of the variants') needs."""
        if self.repetitions != "auto":
            return int(self.repetitions)
        from benchrun.noise import repetitions_for_detect
        from benchrun.power import repetitions_for

        assert self.detect is not None
        n = repetitions_for_detect(self.detect, noise)
        if pilot_cv is not None:
            n = max(n, repetitions_for(self.detect, pilot_cv))
        return n

    def spec_hash(self) -> str:
        """sha256 of the canonical JSON of to_dict(): equal campaigns resume each other."""
        canon = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode("utf-8")).hexdigest()

    @property
    def id(self) -> str:
        """The campaign's id in the store: its name and the first 12 hex digits of spec_hash."""
        return f"{self.name}@{self.spec_hash()[:12]}"

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise ConfigError(f"campaign '{self.name}': no variant '{name}'")

    def run(
        self,
        client: Any = None,
        project: Optional[str] = None,
        progress: bool = True,
        *,
        store: Union[str, os.PathLike[str], None] = None,
        image_store: Union[str, os.PathLike[str], None] = None,
        on_run: Optional[Callable[..., None]] = None,
        batch: int = 8,
    ) -> "CampaignResult":
        """Runs what is left of the plan (see benchrun.campaign.runner.run_campaign)."""
        from benchrun.campaign.runner import run_campaign

        return run_campaign(
            self,
            client=client,
            project=project,
            progress=progress,
            store=store,
            image_store=image_store,
            on_run=on_run,
            batch=batch,
        )


__all__ = ["CONFIG_KEYS", "DEFAULT_STORE", "Campaign", "Variant"]
