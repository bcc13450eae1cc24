"""Draw docs/figures/probe.png and print the twin numbers quoted in docs/twin.md.

The figure shows the amplitude and phase of the default probe (a defocused, aberrated aperture)
beside the ideal disk, and for one grid-lines patch how far the twin's diffraction is from the
patch's own under each probe. The printed numbers are the relative L1 difference between the
diffraction amplitudes of every patch and of its twin, over the patches of one object.

    python scripts/probe_figure.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from engine.config import DataConfig  # noqa: E402
from engine.sim.physics import far_field_amplitude  # noqa: E402
from engine.sim.probe import build_probe  # noqa: E402
from engine.sim.simulate import extract_patches, make_lines_object, object_phase  # noqa: E402

FIGURE = REPO / "docs" / "figures" / "probe.png"
N = 64


def twin(patches: np.ndarray) -> np.ndarray:
    return np.conj(patches[..., ::-1, ::-1])


def diffraction(objects: np.ndarray, probe: np.ndarray) -> np.ndarray:
    wave = torch.from_numpy(np.ascontiguousarray(objects, dtype=np.complex64))
    return far_field_amplitude(wave * torch.from_numpy(probe)).numpy().astype(np.float64)


def twin_difference(objects: np.ndarray, probe: np.ndarray) -> np.ndarray:
    own, other = diffraction(objects, probe), diffraction(twin(objects), probe)
    return np.abs(own - other).sum(axis=(-2, -1)) / own.sum(axis=(-2, -1))


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probes = {
        "defocused_aperture (default)": build_probe(DataConfig()),
        "ideal_disk": build_probe(DataConfig(probe="ideal_disk")),
    }
    amplitude = make_lines_object(392, 400, np.random.default_rng(7))[None]
    amp = extract_patches(amplitude, N, 10)
    phase = extract_patches(object_phase(amplitude), N, 10)
    objects = {
        "no phase": amp.astype(np.complex64),
        "phase": (amp * np.exp(1j * phase)).astype(np.complex64),
    }
    for name, probe in probes.items():
        print(f"{name}: twin symmetry {probe.meta['twin_symmetry']:.4f}")
        for kind, obj in objects.items():
            d = twin_difference(obj, probe.array)
            print(
                f"  {kind:8s} {len(d)} patches: twin diffraction differs by "
                f"min {d.min():.3g}, median {np.median(d):.3g}, max {d.max():.3g} (relative L1)"
            )

    fig, axes = plt.subplots(2, 4, figsize=(13, 6.4), constrained_layout=True)
    patch = objects["phase"][len(amp) // 2 + 16]
    for row, (name, probe) in enumerate(probes.items()):
        p = probe.array
        im = axes[row, 0].imshow(np.abs(p), cmap="magma")
        axes[row, 0].set_title(f"{name}\n|P|")
        fig.colorbar(im, ax=axes[row, 0], shrink=0.8)
        masked = np.where(np.abs(p) > 0.05 * np.abs(p).max(), np.angle(p), np.nan)
        im = axes[row, 1].imshow(masked, cmap="twilight", vmin=-np.pi, vmax=np.pi)
        axes[row, 1].set_title("arg P (rad, where |P| > 5 % of max)")
        fig.colorbar(im, ax=axes[row, 1], shrink=0.8)
        own = diffraction(patch[None], p)[0]
        other = diffraction(twin(patch)[None], p)[0]
        im = axes[row, 2].imshow(np.log10(own + 1e-6), cmap="viridis")
        axes[row, 2].set_title("log10 |F(O P)| of one patch")
        fig.colorbar(im, ax=axes[row, 2], shrink=0.8)
        rel = np.abs(own - other).sum() / own.sum()
        im = axes[row, 3].imshow(np.abs(own - other), cmap="gray_r")
        axes[row, 3].set_title(f"| |F(O P)| - |F(twin P)| |\nrelative L1 {rel:.2g}")
        fig.colorbar(im, ax=axes[row, 3], shrink=0.8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE, dpi=80)
    print(f"wrote {FIGURE.relative_to(REPO)}")


if __name__ == "__main__":
    main()
