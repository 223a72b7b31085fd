"""Reading a compiled program's HLO text: its collectives, by kind, with the bytes they produce.

Shared by the compile check (`compile_check`) and the tests that pin what crosses devices.
Counts are static: an op inside a loop body (a scanned layer stack) is counted once.

TPU writes a reduce-scatter as an "all-reduce-scatter" fusion: a fused computation named
`%all-reduce-scatter...` whose all-reduce feeds a dynamic-slice (v5e, v5p, v6e; libtpu's
`tpu-all-reduce-scatter-fusion` pass). It runs as one reduce-scatter and is counted as one, by
its output (the shards); the all-reduce inside it is not counted. v2, v3 and v4 have no such
fusion: libtpu decomposes every reduce-scatter there into an all-reduce and a slice
(`reduce-scatter-decomposer`; `tpu_compile.reduce_scatters_run_as_all_reduces`).
"""

from __future__ import annotations

import re

import numpy as np

COLLECTIVES = ('all-gather', 'all-reduce', 'reduce-scatter', 'collective-permute', 'all-to-all')
_DTYPE_BYTES = {'f64': 8, 's64': 8, 'u64': 8, 'f32': 4, 's32': 4, 'u32': 4, 'bf16': 2, 'f16': 2,
                's16': 2, 'u16': 2, 's8': 1, 'u8': 1, 'pred': 1}
_SHAPE = re.compile(r'\b(\w+)\[([\d,]*)\]')
_COLLECTIVE = re.compile(r'= (\(.*?\)|\S+) (' + '|'.join(COLLECTIVES) + r')(-start)?\(')
# TPU's reduce-scatter (module docstring), and the header line of a computation.
_REDUCE_SCATTER_FUSION = re.compile(r'= (\(.*?\)|\S+) fusion\(.*calls=%all-reduce-scatter[\w.\-]*')
_COMPUTATION = re.compile(r'^(?:ENTRY )?(%[\w.\-]+) ')
# A transfer between slices (multi-slice TPU): a host-transfer send over the data-center network.
_DCN_SEND = re.compile(r'= (\(.*?\)|\S+) send\(.*_xla_megascale_transfer_type="(\w+)"')


_METADATA = re.compile(r',? metadata=\{[^{}]*\}')
_DEBUG_TABLES = ('FileNames', 'FunctionNames', 'FileLocations', 'StackFrames')


def without_source_locations(hlo_text: str) -> str:
  """The program alone: no table of Python files and frames, no per-op `metadata={...}`.

  Two compiles of one program from different call sites differ only in these.
  """
  kept, in_table = [], False
  for line in hlo_text.splitlines():
    if line in _DEBUG_TABLES:
      in_table = True
    elif in_table and not line.strip():
      in_table = False
    elif not in_table:
      kept.append(_METADATA.sub('', line))
  return '\n'.join(kept)


def shape_bytes(shape: str) -> int:
  """Bytes of one array shape as HLO prints it, e.g. 'bf16[8,128]{1,0:T(8,128)}' -> 2048."""
  dtype, dims = _SHAPE.search(shape).groups()
  return _DTYPE_BYTES.get(dtype, 4) * int(np.prod([int(d) for d in dims.split(',') if d]))


def _array_shapes(result: str) -> list[str]:
  return [m.group(0) for m in _SHAPE.finditer(result) if m.group(1) in _DTYPE_BYTES]


def collectives(hlo_text: str) -> dict[str, list[int]]:
  """Opcode -> the byte size of the result of each such collective in the program.

  An async `-start` op is counted once, by its result buffer (its tuple also carries the
  operand, for all-gather and collective-permute). A TPU all-reduce-scatter fusion counts as a
  reduce-scatter (module docstring).
  """
  found: dict[str, list[int]] = {kind: [] for kind in COLLECTIVES}
  computation = ''
  for line in hlo_text.splitlines():
    if line and not line[0].isspace():  # a computation's header (or its closing brace)
      header = _COMPUTATION.match(line)
      computation = header.group(1) if header else ''
      continue
    fused = _REDUCE_SCATTER_FUSION.search(line)
    if fused:
      found['reduce-scatter'].append(sum(shape_bytes(s) for s in _array_shapes(fused.group(1))))
      continue
    match = _COLLECTIVE.search(line)
    if not match or computation.startswith('%all-reduce-scatter'):
      continue
    result, kind, is_start = match.groups()
    shapes = _array_shapes(result)
    if is_start and kind in ('all-gather', 'collective-permute') and len(shapes) >= 2:
      shapes = shapes[1:2]
    found[kind].append(sum(shape_bytes(s) for s in shapes))
  return found


def dcn_transfers(hlo_text: str) -> dict[str, list[int]]:
  """Transfer type ('ALL_REDUCE', ...) -> bytes sent by each cross-slice transfer."""
  found: dict[str, list[int]] = {}
  for line in hlo_text.splitlines():
    match = _DCN_SEND.search(line)
    if match:
      result, kind = match.groups()
      shapes = _array_shapes(result)
      found.setdefault(kind, []).append(shape_bytes(shapes[0]) if shapes else 0)
  return found
