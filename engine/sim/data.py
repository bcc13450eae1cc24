"""The grid-lines dataset: what it holds, recipe validation, and the recipe-keyed cache.

``load_or_build_dataset`` is the entry point (docs/science.md, 'The grid-lines dataset'). It
validates the DataConfig, hashes the full recipe, reuses a verified cache file when one exists,
and otherwise simulates (``engine.sim.simulate``) and writes one atomically (``engine.sim.datacache``).
The probe lives in ``engine.sim.probe``; this module only composes the parts and decides what a
dataset holds.

Conventions chosen here:
- ``Split.diffraction`` is the network input sqrt(counts) / s, in scan order, not shuffled (the
  training loop shuffles).
- ``Split.amplitude`` is the object amplitude patch divided by the split's norm_Y_I, *not* probe
  weighted (the original stored |psi| / s = Y_I * |P|). It is what the generator should output as
  |O|: ``ForwardModel(dataset.probe)(amplitude * exp(1j * phase))`` is the noiseless diffraction.
- ``dataset.probe`` is the normalised simulation probe, used by the physics model too (a departure
  from the original, recorded in ``meta["probe"]["used_by_physics"]``).
- Memory: only diffraction and the full objects are stored and cached. The ``amplitude`` and
  ``phase`` patches are cut from the objects on first access: at the default recipe each costs
  226 MB for the training split, which training never reads.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from engine.config import RETIRED, DataConfig
from engine.errors import ConfigError, DatasetError
from engine.locking import hold
from engine.sim.datacache import read_cache, recipe_digest, write_cache
from engine.sim.probe import (
    BUILT_IN_PROBES,
    DEFOCUSED_APERTURE,
    MAX_SPREAD_FRACTION,
    PUPIL_EDGE_SIGMA,
    beam_spread_px,
    build_probe,
    load_probe,
    probe_file_digest,
    probe_path,
)
from engine.sim.stitch import count_patches_per_axis, gt_crop_bounds


def _simulation():
    """engine.sim.simulate, imported on first use: it pulls in PyTorch (~2 s, ~250 MB), which
    validating a recipe (arms.toml loading, the dashboard's start-up) never needs."""
    from engine.sim import simulate

    return simulate


# Bump whenever simulation, stored layout or meta change: old cache files then stop matching.
DATA_FORMAT_VERSION = 1
# Above ~1e15 photons per pattern the brightest pixel's rate nears int64 Poisson limits, and the
# noise is far below float32 resolution anyway.
NPHOTONS_MAX = 1e15
# Independent random streams per purpose, derived from the data seed: objects never depend on noise
# draws, and train and test objects always differ.
SEED_STREAMS = {"train_objects": 0, "test_objects": 1, "train_noise": 2, "test_noise": 3}


@dataclass(frozen=True, eq=False)
class Split:
    """One split's patterns in scan order (image-major, then row-major over the scan grid)."""

    diffraction: np.ndarray  # float32 (n, N, N): sqrt(counts) / intensity_scale
    object_amplitude: np.ndarray  # float32 (n_images, S, S), un-normalised
    object_phase: np.ndarray  # float32 (n_images, S, S)
    positions: np.ndarray  # int64 (n, 2): (row, col) patch origin in its own image
    norm_Y_I: float
    stride: int
    patches_per_axis: int
    n_images: int

    @cached_property
    def amplitude(self) -> np.ndarray:
        """float32 (n, N, N): object amplitude patches / norm_Y_I, cut on first access."""
        n = self.diffraction.shape[-1]
        return _simulation().extract_patches(
            _normalised(self.object_amplitude, self.norm_Y_I), n, self.stride
        )

    @cached_property
    def phase(self) -> np.ndarray:
        """float32 (n, N, N): object phase patches, cut on first access."""
        return _simulation().extract_patches(
            self.object_phase, self.diffraction.shape[-1], self.stride
        )


@dataclass(frozen=True, eq=False)
class GridLinesDataset:
    """Both splits, their probe, the evaluation ground truth and the provenance record."""

    train: Split
    test: Split
    probe: np.ndarray  # complex64 (N, N), for simulation and physics
    intensity_scale: float
    ground_truth: np.ndarray  # complex64 (G, G): evaluation crop of the first test object
    recipe_hash: str
    meta: dict  # JSON-serialisable, for the telemetry header


def _normalised(amplitudes: np.ndarray, norm: float) -> np.ndarray:
    # One expression shared by simulation and Split.amplitude, so both see bit-identical patches.
    return (amplitudes / np.float32(norm)).astype(np.float32)


def _reject(key: str, value, reason: str):
    raise ConfigError(f"data.{key} = {value!r}: {reason}")


def _canonical_recipe(cfg: DataConfig) -> dict:
    """Every knob, already checked and coerced when the DataConfig was built."""
    return dataclasses.asdict(cfg)


def validate_data_config(cfg: DataConfig) -> None:
    """Raise ConfigError naming the knob, its value and what is allowed, before anything is built.

    Covers each knob's own range, the cross-knob scan geometry, and a probe file's existence, shape
    and dtype, so a bad arms.toml fails when it is loaded rather than minutes into a run.
    """
    _canonical_recipe(cfg)
    n = cfg.N
    if cfg.object_size < n:
        _reject("object_size", cfg.object_size, f"expected an object at least N = {n} px wide")
    for key in ("train_stride", "test_stride"):
        if getattr(cfg, key) > n:
            _reject(
                key,
                getattr(cfg, key),
                f"expected at most N = {n} px: a longer stride leaves "
                f"parts of the object that no patch sees",
            )
    if (n - cfg.test_stride) % 2:
        _reject(
            "test_stride",
            cfg.test_stride,
            f"N - test_stride must be even so stitching keeps an equal border on both sides; "
            f"expected a stride with the parity of N = {n}",
        )
    if cfg.nphotons > NPHOTONS_MAX:
        _reject("nphotons", cfg.nphotons, f"expected at most {NPHOTONS_MAX:g} photons per pattern")
    if cfg.probe == DEFOCUSED_APERTURE:
        _validate_defocused_aperture(cfg)
    elif cfg.probe not in BUILT_IN_PROBES:
        load_probe(probe_path(cfg.probe), n)


def _validate_defocused_aperture(cfg: DataConfig) -> None:
    """The pupil must fit the frequency grid and the beam the patch, or the probe aliases."""
    n = cfg.N
    largest = n / 2 - 2 * PUPIL_EDGE_SIGMA
    if cfg.probe_aperture_radius > largest:
        _reject(
            "probe_aperture_radius",
            cfg.probe_aperture_radius,
            f"the pupil (plus its {2 * PUPIL_EDGE_SIGMA:g}-px soft edge) must fit the N = {n} "
            f"frequency grid; allowed: at most {largest:g} frequency px",
        )
    spread = beam_spread_px(
        n, cfg.probe_aperture_radius, cfg.probe_defocus, cfg.probe_astigmatism, cfg.probe_coma
    )
    if spread > MAX_SPREAD_FRACTION * n:
        _reject(
            "probe_defocus",
            cfg.probe_defocus,
            f"with probe_astigmatism = {cfg.probe_astigmatism:g}, probe_coma = "
            f"{cfg.probe_coma:g} and probe_aperture_radius = {cfg.probe_aperture_radius:g} "
            f"the beam spreads over a radius of up to {spread:.1f} px, more than "
            f"{MAX_SPREAD_FRACTION:g} N = {MAX_SPREAD_FRACTION * n:g} px: it would wrap around "
            f"the patch; allowed: 2 N (|defocus| + |astigmatism| + 3.5 |coma|) / radius <= "
            f"{MAX_SPREAD_FRACTION * n:g}",
        )


def recipe_identity(cfg: DataConfig) -> tuple[dict, str]:
    """(canonical recipe, sha256 cache key) of a valid DataConfig.

    Every DataConfig field enters the key, so a new knob is keyed without anyone remembering to. A
    file probe enters by content hash, not path: editing the file invalidates the cache, moving it
    does not.
    """
    validate_data_config(cfg)
    recipe = _canonical_recipe(cfg)
    if cfg.probe not in BUILT_IN_PROBES:
        recipe["probe"] = "sha256:" + probe_file_digest(probe_path(cfg.probe))
    # Retired knobs enter the key at their only value, so caches and runs made before a knob was
    # retired keep their keys.
    keyed = {**recipe, **RETIRED["data"]}
    digest = recipe_digest({"data_format_version": DATA_FORMAT_VERSION, "recipe": keyed})
    return recipe, digest


def cache_file(cache_dir: Path, digest: str) -> Path:
    return cache_dir / f"gridlines-{digest[:16]}.npz"


def _geometry(cfg: DataConfig) -> dict[str, tuple[int, int]]:
    """(n_images, stride) per split."""
    return {"train": (cfg.nimgs_train, cfg.train_stride), "test": (cfg.nimgs_test, cfg.test_stride)}


def _expected_arrays(cfg: DataConfig) -> dict:
    n, size = cfg.N, cfg.object_size
    spec = {"probe": ((n, n), np.complex64), "intensity_scale": ((), np.float64)}
    for split, (images, stride) in _geometry(cfg).items():
        patterns = images * count_patches_per_axis(size, n, stride) ** 2
        spec[f"{split}_diffraction"] = ((patterns, n, n), np.float32)
        spec[f"{split}_object_amplitude"] = ((images, size, size), np.float32)
        spec[f"{split}_object_phase"] = ((images, size, size), np.float32)
        spec[f"{split}_norm_Y_I"] = ((), np.float64)
    return spec


def _seeded(seed: int, stream: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, SEED_STREAMS[stream]]))


def _simulate(cfg: DataConfig, log: Callable[[str], None]) -> tuple[dict[str, np.ndarray], dict]:
    """Run the whole recipe; return the arrays to store and the build facts not derivable later."""
    started = time.perf_counter()
    simulate = _simulation()
    probe = build_probe(cfg)
    geometry = _geometry(cfg)
    arrays: dict[str, np.ndarray] = {"probe": probe.array}
    norms = {}
    for split, (images, stride) in geometry.items():
        rng = _seeded(cfg.seed, f"{split}_objects")
        amplitude = np.stack(
            [simulate.make_lines_object(cfg.object_size, cfg.n_lines, rng) for _ in range(images)]
        )
        phase = simulate.object_phase(amplitude) if cfg.set_phi else np.zeros_like(amplitude)
        norms[split] = simulate.patch_norm(amplitude, cfg.N, stride)
        arrays[f"{split}_object_amplitude"] = amplitude
        arrays[f"{split}_object_phase"] = phase
        arrays[f"{split}_norm_Y_I"] = np.array(norms[split], dtype=np.float64)
    log(f"objects ready ({time.perf_counter() - started:.1f} s); simulating diffraction")

    train_amplitude = _normalised(arrays["train_object_amplitude"], norms["train"])
    scale = simulate.intensity_scale(train_amplitude, probe.array, cfg.train_stride, cfg.nphotons)
    arrays["intensity_scale"] = np.array(scale, dtype=np.float64)
    photons = {"requested": cfg.nphotons}
    for split, (_, stride) in geometry.items():
        arrays[f"{split}_diffraction"], drawn = simulate.simulate_diffraction(
            _normalised(arrays[f"{split}_object_amplitude"], norms[split]),
            arrays[f"{split}_object_phase"],
            probe.array,
            stride,
            scale,
            _seeded(cfg.seed, f"{split}_noise"),
        )
        photons[f"{split}_expected"] = drawn["expected"]
        photons[f"{split}_drawn"] = drawn["drawn"]
    build = {
        "probe": probe.meta,
        "photons_per_pattern": photons,
        "build_seconds": round(time.perf_counter() - started, 3),
    }
    return arrays, build


def _assemble(
    cfg: DataConfig,
    arrays: dict[str, np.ndarray],
    build: dict,
    recipe: dict,
    digest: str,
    cache: dict,
) -> GridLinesDataset:
    n, size = cfg.N, cfg.object_size
    splits = {}
    for split, (images, stride) in _geometry(cfg).items():
        splits[split] = Split(
            diffraction=arrays[f"{split}_diffraction"],
            object_amplitude=arrays[f"{split}_object_amplitude"],
            object_phase=arrays[f"{split}_object_phase"],
            positions=np.tile(_simulation().scan_positions(size, n, stride), (images, 1)),
            norm_Y_I=float(arrays[f"{split}_norm_Y_I"]),
            stride=stride,
            patches_per_axis=count_patches_per_axis(size, n, stride),
            n_images=images,
        )
    start, stop = gt_crop_bounds(size, n, cfg.test_stride)
    gt_amplitude = arrays["test_object_amplitude"][0, start:stop, start:stop]
    gt_phase = arrays["test_object_phase"][0, start:stop, start:stop]
    ground_truth = (gt_amplitude * np.exp(1j * gt_phase)).astype(np.complex64)
    scale = float(arrays["intensity_scale"])
    meta = {
        "data_format_version": DATA_FORMAT_VERSION,
        "recipe_hash": digest,
        "recipe": recipe,
        "cache": cache,
        "probe": build["probe"],
        "sizes": {
            "N": n,
            "object_size": size,
            "ground_truth": list(ground_truth.shape),
            **{
                split: {
                    "n_images": s.n_images,
                    "stride": s.stride,
                    "patches_per_axis": s.patches_per_axis,
                    "n_patterns": int(s.diffraction.shape[0]),
                }
                for split, s in splits.items()
            },
        },
        "gt_phase_std": float(np.std(gt_phase)),
        # A constant GT phase makes every phase metric meaningless (docs/science.md,
        # 'Object phase').
        "phase_vacuous": bool(np.ptp(gt_phase) == 0),
        "intensity_scale": scale,
        "norm_Y_I": {split: s.norm_Y_I for split, s in splits.items()},
        "photons_per_pattern": build["photons_per_pattern"],
        "build_seconds": build["build_seconds"],
    }
    return GridLinesDataset(
        train=splits["train"],
        test=splits["test"],
        probe=arrays["probe"],
        intensity_scale=scale,
        ground_truth=ground_truth,
        recipe_hash=digest,
        meta=meta,
    )


def build_dataset(cfg: DataConfig, log: Callable[[str], None] | None = None) -> GridLinesDataset:
    """Simulate the recipe in memory, without touching any cache."""
    recipe, digest = recipe_identity(cfg)
    arrays, build = _simulate(cfg, _silent if log is None else log)
    return _assemble(cfg, arrays, build, recipe, digest, {"file": None, "status": "not cached"})


def load_or_build_dataset(
    cfg: DataConfig, cache_dir: Path, log: Callable[[str], None] | None = None
) -> GridLinesDataset:
    """The dataset for ``cfg``: from a verified cache file if one exists, else simulated and cached.

    A cache file that is unreadable, truncated, from another recipe or format version, or whose
    arrays fail their checksums is reported through ``log`` and rebuilt, never used.
    """
    log = _silent if log is None else log
    recipe, digest = recipe_identity(cfg)
    path = cache_file(Path(cache_dir), digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    expect_header = {"data_format_version": DATA_FORMAT_VERSION, "recipe_hash": digest}
    found, problem = _read_cached(cfg, path, expect_header)
    if found is not None:  # the common case takes no lock: readers never wait for readers
        log(f"dataset cache hit: {path}")
        return _assemble(cfg, *found, recipe, digest, {"file": str(path), "status": "hit"})
    # Arms of one study launched together want the same recipe: one builds, the others wait
    # for it and load the file (an OS lock, released even if the builder is killed).
    with hold(
        path.with_name(path.name + ".lock"),
        on_wait=lambda: log(f"waiting for another process that is building {path.name}"),
    ):
        found, problem = _read_cached(cfg, path, expect_header)  # built while we looked?
        if found is not None:
            log(f"dataset cache hit: {path} (built by another process)")
            return _assemble(cfg, *found, recipe, digest, {"file": str(path), "status": "hit"})
        if problem is None:
            log(f"dataset cache miss: building {path}")
            status = "built"
        else:
            log(f"dataset cache {path} is unusable: {problem}; rebuilding it")
            status = "rebuilt"
        arrays, build = _simulate(cfg, log)
        write_cache(path, arrays, {**expect_header, "build": build})
    log(
        f"dataset built in {build['build_seconds']:.1f} s and cached at {path} "
        f"({path.stat().st_size / 2**20:.1f} MiB)"
    )
    return _assemble(cfg, arrays, build, recipe, digest, {"file": str(path), "status": status})


def _read_cached(cfg: DataConfig, path: Path, expect_header: dict):
    """((arrays, build record), None) from a verified cache file; (None, None) if there is no
    file; (None, reason) if it is unusable."""
    if not path.exists():
        return None, None
    try:
        arrays, header = read_cache(path, expect_header, _expected_arrays(cfg))
        build = header.get("build")
        if not isinstance(build, dict):
            raise DatasetError("header has no build record")
    except DatasetError as exc:
        return None, str(exc)
    return (arrays, build), None


def _silent(_message: str) -> None:
    """Default log sink: the caller did not ask to hear about cache decisions."""
