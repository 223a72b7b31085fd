"""The package's layers: each subpackage imports only from the layers below it.

Read from the source (every `from electra_jax... import` line, also those inside functions), so
a new upward import fails here before it becomes a cycle. And, by importing: the conversion CLI
loads no trainer (`TrainState` lives in `interop.train_state` for that reason).
"""

import ast
import pathlib
import subprocess
import sys

import electra_jax

PACKAGE = pathlib.Path(electra_jax.__file__).parent
# Bottom to top; each layer may import the ones before it. `configs` (the packaged config
# files) and the root's shared runtime (errors, files, startup, reporting) sit below them all.
LAYERS = ('parallel', 'core', 'spec', 'data', 'interop', 'pretraining', 'finetune', 'inspection')
RUNTIME = ('configs', 'errors', 'files', 'startup', 'reporting')
CLIS = ('main', 'convert', 'inspect', 'plot', 'compile_check', 'tokenizer')


def _imported_parts(path: pathlib.Path) -> set[str]:
  """The first part below `electra_jax` of everything `path` imports from the package."""
  parts = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith('electra_jax'):
      below = node.module.split('.')[1:]
      parts.update([below[0]] if below else [alias.name for alias in node.names])
    elif isinstance(node, ast.Import):
      parts.update(a.name.split('.')[1] for a in node.names
                   if a.name.startswith('electra_jax.'))
  return parts


def _upward_imports() -> list[str]:
  found = []
  for path in sorted(PACKAGE.rglob('*.py')):
    relative = path.relative_to(PACKAGE).parts
    if len(relative) == 1 or relative[0] == 'configs':
      continue  # the CLIs and the runtime: checked below
    layer = LAYERS.index(relative[0])
    for part in _imported_parts(path):
      if part in LAYERS and LAYERS.index(part) > layer:
        found.append(f'{"/".join(relative)} imports {part}')
      elif part in CLIS:
        found.append(f'{"/".join(relative)} imports the CLI {part}')
  for name in RUNTIME[1:]:
    for part in _imported_parts(PACKAGE / f'{name}.py'):
      if part in LAYERS and name != 'reporting' or part in CLIS:
        found.append(f'{name}.py imports {part}')
  return found


def test_every_subpackage_imports_only_the_layers_below_it():
  assert _upward_imports() == []


def test_every_module_lies_in_a_named_layer():
  folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != '__pycache__'}
  modules = {p.stem for p in PACKAGE.glob('*.py') if p.stem != '__init__'}
  assert folders == set(LAYERS) | {'configs'}
  assert modules == set(CLIS) | set(RUNTIME[1:])


def test_conversion_loads_no_trainer():
  loaded = subprocess.run(
      [sys.executable, '-c', 'import sys, electra_jax.convert; '
       'print(" ".join(m for m in sys.modules if m.startswith("electra_jax.")))'],
      capture_output=True, text=True, check=True, timeout=300).stdout.split()
  assert 'electra_jax.interop.export' in loaded
  trainer = ('electra_jax.pretraining', 'electra_jax.finetune')
  assert not [m for m in loaded if m.startswith(trainer)]
