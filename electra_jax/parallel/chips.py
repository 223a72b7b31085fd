"""The one table of accelerator chips: peak bf16 FLOP/s, HBM, HBM bandwidth, cores per chip.

Used for MFU on the progress line (`reporting.Throughput`) and by the compile check's memory fit
and roofline (`compile_check`). Figures are per *chip*, from public specifications:
  TPU v2-v6e, TPU7x: cloud.google.com/tpu/docs/system-architecture-tpu-vm and the per-version
    pages (cloud.google.com/tpu/docs/v2, v3, v4, v5e, v5p, v6e, tpu7x): bf16 peak, HBM GiB, HBM
    GB/s and TensorCores per chip.
  GPUs: NVIDIA's data sheets (V100 SXM2 32GB, A100 SXM4 80GB, L4, H100 SXM5, H200 SXM): dense
    (no sparsity) bf16/fp16 tensor-core peak, memory and bandwidth.
A jax device is one TensorCore on TPU v2/v3 (two per chip) and one chip elsewhere (v4 and v5p
fuse their two cores into one "megacore" device); `per_device` divides accordingly.
"""

from __future__ import annotations

import dataclasses

import jax


@dataclasses.dataclass(frozen=True)
class Chip:
  name: str  # as users write the generation: 'v3', 'v5e', 'H100'
  device_kinds: tuple[str, ...]  # substrings of jax's `device.device_kind` for this chip
  peak_tflops: float  # dense bf16, per chip
  hbm_gib: float  # per chip
  hbm_gbytes_per_s: float  # per chip
  cores_per_chip: int  # TensorCores (TPU) per chip
  devices_per_chip: int  # jax devices per chip (2 on v2/v3, whose cores are separate devices)

  @property
  def peak_flops_per_device(self) -> float:
    return self.peak_tflops * 1e12 / self.devices_per_chip

  @property
  def hbm_bytes_per_device(self) -> float:
    return self.hbm_gib * 1024**3 / self.devices_per_chip

  @property
  def hbm_bytes_per_s_per_device(self) -> float:
    return self.hbm_gbytes_per_s * 1e9 / self.devices_per_chip


# More specific device kinds first: 'TPU v5 lite' (v5e) before 'TPU v5' (v5p).
CHIPS = (
    Chip('v2', ('TPU v2',), 45.0, 16.0, 700.0, 2, 2),
    Chip('v3', ('TPU v3',), 123.0, 32.0, 900.0, 2, 2),
    Chip('v4', ('TPU v4',), 275.0, 32.0, 1200.0, 2, 1),
    Chip('v5e', ('TPU v5 lite', 'TPU v5e'), 197.0, 16.0, 819.0, 1, 1),
    Chip('v5p', ('TPU v5p', 'TPU v5'), 459.0, 95.0, 2765.0, 2, 1),
    Chip('v6e', ('TPU v6 lite', 'TPU v6e', 'TPU v6'), 918.0, 32.0, 1640.0, 1, 1),
    Chip('tpu7x', ('TPU7x', 'TPU 7x'), 2307.0, 192.0, 7370.0, 2, 1),
    Chip('H200', ('H200',), 989.0, 141.0, 4800.0, 1, 1),
    Chip('H100', ('H100',), 989.0, 80.0, 3350.0, 1, 1),
    Chip('A100', ('A100',), 312.0, 80.0, 2039.0, 1, 1),
    Chip('L4', ('L4',), 121.0, 24.0, 300.0, 1, 1),
    Chip('V100', ('V100',), 125.0, 32.0, 900.0, 1, 1),
)
TPU_GENERATIONS = ('v2', 'v3', 'v4', 'v5e', 'v5p', 'v6e')  # those with gcloud names 'vX-N'


def by_name(name: str) -> Chip | None:
  return next((c for c in CHIPS if c.name.lower() == name.lower()), None)


def of_kind(device_kind: str) -> Chip | None:
  """The chip one of whose device kinds is in `device_kind` (jax's `device.device_kind`), or None.

  Substrings, in table order: 'NVIDIA H100 80GB HBM3' is an H100, 'TPU v5 lite' a v5e.
  """
  for chip in CHIPS:
    if any(kind in device_kind for kind in chip.device_kinds):
      return chip
  return None


def of_device(device: jax.Device) -> Chip | None:
  return of_kind(getattr(device, 'device_kind', ''))
