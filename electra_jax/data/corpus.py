"""Raw text before tokenisation: the built-in corpus and text files, as documents of lines.

The common format everywhere is the original ELECTRA builder's: one sentence (or line) per line and
a blank line between documents. This module turns each source into that format on the Python side:

* the **built-in corpus** ships with every Python install (the reference documentation in
  `pydoc_data.topics` plus the docstrings of the standard library's own source files), so the quick
  start and the tests need no download. `data.builtin_packages` adds the docstrings of installed
  packages (those `pip install electra-jax` brings: numpy, jax, tensorflow, ...), read from their
  source files with `ast`, never imported. It is cut into a fixed number of document-aligned
  shards, and cached (`builtin_corpus`) because parsing a few thousand source files takes minutes;
* **text files** are paths, globs or comma-separated lists of them, read through `tf.io.gfile` so
  that `gs://` works, `.gz` included.

The tf.data side of reading (per-host sharding, epochs) lives in `sources.py`; the Python iterators
here feed the tokenizer trainer and the tests.
"""

import ast
import dataclasses
import functools
import gzip
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import os
import pathlib
import re
import sys
import sysconfig
from typing import Iterable, Iterator, Sequence

from absl import logging
import tensorflow as tf

from electra_jax import files
from electra_jax.errors import UserError

# Bump when the way the built-in corpus is assembled changes: it keys the tokenizer cache.
BUILTIN_CORPUS_VERSION = 3
# Document-aligned shards of the built-in corpus: enough for 16 hosts to each read their own.
BUILTIN_NUM_SHARDS = 16
# Source directories whose docstrings stay out: tests repeat the API's own text, vendored and
# build trees are not the package's documentation.
_SKIPPED_DIRS = frozenset({'site-packages', 'dist-packages', 'test', 'tests', 'testing', 'idlelib',
                           '__pycache__', '_vendor', 'vendored', 'third_party', 'include'})
# Docstrings shorter than this are mostly one-liners ("Return x.") that teach little.
_MIN_DOCSTRING_CHARS = 200
# Where a line is cut before tokenisation. A token covers at least one character, and the longest
# SentencePiece piece is 16 characters, so a line this long already overfills any example (whose
# overflow the builder discards): cutting it loses nothing and bounds memory and time.
MAX_LINE_CHARS_PER_TOKEN = 16

_HEADING_UNDERLINE = re.compile(r'^([*=\-~^"])\1{3,}\s*$')
_SENTENCE_END = re.compile(r'(?<=[.!?])\s+(?=[A-Z"\'(\[])')
_SPACES = re.compile(r'\s+')


@dataclasses.dataclass(frozen=True)
class BuiltinCorpus:
  """The built-in corpus, split once into documents.

  Attributes:
    documents: each document is a tuple of sentences (non-empty, single-line strings); the order is
      fixed for a given Python installation.
  """
  documents: tuple[tuple[str, ...], ...]

  def shard_lines(self, shard_index: int, num_shards: int = BUILTIN_NUM_SHARDS) -> list[str]:
    """Lines of shard `shard_index` (documents i with i % num_shards == shard_index), in file format.

    Every document is followed by a blank line, as in a text file.
    """
    lines = []
    for document in self.documents[shard_index::num_shards]:
      lines.extend(document)
      lines.append('')
    return lines

  def texts(self) -> Iterator[str]:
    """All sentences in order (for tokenizer training)."""
    for document in self.documents:
      yield from document


def _paragraph_sentences(paragraph_lines: Sequence[str]) -> list[str]:
  """Joins a wrapped paragraph into one line and cuts it into sentences."""
  text = _SPACES.sub(' ', ' '.join(line.strip() for line in paragraph_lines)).strip()
  if not text:
    return []
  return [s for s in _SENTENCE_END.split(text) if s]


def _split_document(text: str) -> list[list[str]]:
  """Cuts reStructuredText-like help text into documents at headings, then into sentences.

  A heading is a line underlined by `****`, `====` etc.; each heading starts a new document.
  Paragraphs (separated by blank lines) are joined and split into sentences.
  """
  documents, sentences, paragraph = [], [], []

  def end_paragraph():
    sentences.extend(_paragraph_sentences(paragraph))
    paragraph.clear()

  lines = text.splitlines()
  for i, line in enumerate(lines):
    if _HEADING_UNDERLINE.match(line):
      continue
    is_heading = i + 1 < len(lines) and _HEADING_UNDERLINE.match(lines[i + 1]) and line.strip()
    if is_heading:
      end_paragraph()
      if sentences:
        documents.append(list(sentences))
        sentences.clear()
      sentences.append(line.strip())
    elif not line.strip():
      end_paragraph()
    else:
      paragraph.append(line)
  end_paragraph()
  if sentences:
    documents.append(sentences)
  # A heading with nothing under it is not a document.
  return [d for d in documents if len(d) > 1 or len(d[0]) > 80]


def _source_files(root: pathlib.Path) -> Iterator[pathlib.Path]:
  """The Python sources under `root` whose docstrings join the corpus, in a fixed order."""
  for path in sorted(root.rglob('*.py')):
    relative = path.relative_to(root)
    if _SKIPPED_DIRS.intersection(relative.parts[:-1]) or path.name.endswith('_test.py'):
      continue
    yield path


def _file_docstrings(path: pathlib.Path) -> Iterator[str]:
  """Long docstrings of one Python source, read with `ast` (nothing imported)."""
  try:
    tree = ast.parse(path.read_bytes())
  except (SyntaxError, ValueError, OSError):
    return  # a broken or unreadable source file is no reason to fail
  for node in ast.walk(tree):
    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
      docstring = ast.get_docstring(node)
      if docstring and len(docstring) >= _MIN_DOCSTRING_CHARS:
        yield docstring


def source_file_documents(root: pathlib.Path
                          ) -> Iterator[tuple[pathlib.PurePath, list[list[str]]]]:
  """The built-in corpus's documents from the Python sources under `root`, file by file.

  Yields (the file's path relative to `root`, the documents of its long docstrings in order) for
  every source the corpus reads, in the corpus's fixed order; read with `ast`, nothing imported.
  The corpus builder and the offline probe (`finetune/probe_data.py`, which labels a document
  with its file's top-level module) both read the sources through this one selection.
  """
  for path in _source_files(root):
    yield path.relative_to(root), [document for docstring in _file_docstrings(path)
                                   for document in _split_document(docstring)]


def package_root(name: str) -> pathlib.Path:
  """The source directory of the installed top-level package `name`, found without importing it.

  Raises:
    ValueError: `name` is not an installed package (a module file or nothing).
  """
  try:
    spec = importlib.util.find_spec(name)
  except (ImportError, ValueError):
    spec = None
  locations = list(spec.submodule_search_locations or []) if spec else []
  if '.' in name or not locations:
    raise ValueError(f'data.builtin_packages names {name!r}, which is not an installed top-level '
                     'package here. Name installed packages (e.g. numpy,jax,tensorflow), or '
                     "set --config.data.builtin_packages='' for the standard library alone.")
  return pathlib.Path(locations[0])


def _package_versions(packages: Sequence[str]) -> list[str]:
  """`name=version` of each package (its distribution's version, else its directory's mtime)."""
  distributions = importlib.metadata.packages_distributions()
  versions = []
  for name in packages:
    names = distributions.get(name, [])
    try:
      version = importlib.metadata.version(names[0]) if names else None
    except importlib.metadata.PackageNotFoundError:
      version = None
    if version is None:  # not from a distribution (e.g. on PYTHONPATH): its files decide
      version = f'mtime{int(package_root(name).stat().st_mtime)}'
    versions.append(f'{name}={version}')
  return versions


def parse_packages(packages: str | Iterable[str]) -> tuple[str, ...]:
  """'numpy, jax' or ('numpy', 'jax') -> ('numpy', 'jax'): stripped, no empty names, in order."""
  if isinstance(packages, str):
    packages = packages.split(',')
  return tuple(dict.fromkeys(p.strip() for p in packages if p.strip()))


def builtin_corpus_key(packages: str | Iterable[str] = ()) -> str:
  """Identifies the built-in corpus without building it (for cache names).

  It holds the Python version, the builder's version and, with packages, a hash of their names
  and versions, so an upgrade of any of them builds a new corpus (and tokenizer).
  """
  packages = parse_packages(packages)
  version = f'{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}'
  key = f'py{version}-c{BUILTIN_CORPUS_VERSION}'
  if packages:
    digest = hashlib.sha256(','.join(_package_versions(packages)).encode()).hexdigest()[:12]
    key += f'-pkg{digest}'
  return key


def default_cache_dir() -> str:
  """$XDG_CACHE_HOME/electra_jax, or ~/.cache/electra_jax."""
  base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
  return os.path.join(base, 'electra_jax')


def _build_documents(packages: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
  import pydoc_data.topics  # noqa: PLC0415

  documents = []
  for topic in sorted(pydoc_data.topics.topics):
    documents.extend(_split_document(pydoc_data.topics.topics[topic]))
  roots = [pathlib.Path(sysconfig.get_paths()['stdlib'])] + [package_root(p) for p in packages]
  for root in roots:
    for _, file_documents in source_file_documents(root):
      documents.extend(file_documents)
  # Sources repeat docstrings (inherited, copied or re-exported APIs): keep each document once,
  # so that no held-out document also appears in training.
  return tuple(dict.fromkeys(tuple(d) for d in documents if d))


@functools.cache
def builtin_corpus(packages: str | tuple[str, ...] = ()) -> BuiltinCorpus:
  """The built-in corpus: the standard library's documentation plus `packages`' docstrings.

  Built once per machine and cached in `default_cache_dir()` under `builtin_corpus_key`, written
  atomically, so concurrent processes never read half a file and later ones skip the build
  (seconds for the standard library, a few minutes with tensorflow's sources). An unwritable
  cache only costs the rebuild.

  Args:
    packages: installed top-level packages whose docstrings join the corpus, as a tuple or a
      comma-separated string (`data.builtin_packages`), in a fixed order.
  """
  packages = parse_packages(packages)
  path = os.path.join(default_cache_dir(), f'builtin-corpus-{builtin_corpus_key(packages)}.json.gz')
  if tf.io.gfile.exists(path):
    try:
      with tf.io.gfile.GFile(path, 'rb') as f:
        documents = json.loads(gzip.decompress(f.read()))
      return BuiltinCorpus(documents=tuple(tuple(d) for d in documents))
    except (OSError, ValueError, EOFError) as error:
      logging.warning('Rebuilding the built-in corpus: its cache %s is unreadable (%s).', path,
                      error)
  logging.info('Building the built-in corpus (standard library%s) ...',
               f' + {", ".join(packages)}' if packages else '')
  documents = _build_documents(packages)
  try:
    tf.io.gfile.makedirs(os.path.dirname(path))
    files.write_atomically(path, gzip.compress(json.dumps(documents).encode(), compresslevel=6))
  except (OSError, UserError, tf.errors.OpError) as error:
    logging.warning('Could not cache the built-in corpus in %s (%s); the next run rebuilds it.',
                    path, error)
  built = BuiltinCorpus(documents=documents)
  logging.info('Built-in corpus: %d documents, %d sentences, %.1fM characters.',
               len(documents), sum(len(d) for d in documents),
               sum(len(s) for d in documents for s in d) / 1e6)
  return built


# ---- Text files -------------------------------------------------------------------------------


def expand_file_patterns(patterns: str, what: str = 'data.train_files') -> list[str]:
  """Expands a comma-separated list of paths/globs (local or gs://) into a sorted file list.

  Raises:
    ValueError: if the list is empty, or a pattern matches no file (naming the pattern).
  """
  parts = [p.strip() for p in patterns.split(',') if p.strip()]
  if not parts:
    raise UserError(f'{what} is empty: give one or more paths or globs (comma-separated), '
                    f'e.g. --config.{what}=/data/wiki/*.txt.gz')
  files = []
  for pattern in parts:
    matches = sorted(tf.io.gfile.glob(pattern))
    matches = [m for m in matches if not tf.io.gfile.isdir(m)]
    if not matches:
      raise UserError(f'{what}: {pattern!r} matches no file. Check the path (and, for gs://, '
                      'the credentials); a missing file is not an empty corpus.')
    files.extend(matches)
  # Keep the given order of patterns, drop duplicates (two globs may overlap).
  return list(dict.fromkeys(files))


def compression_type(path: str) -> str:
  """The tf.data compression of a file, from its name ('' or 'GZIP')."""
  return 'GZIP' if path.endswith('.gz') else ''


def clean_line(raw: bytes, max_chars: int) -> str:
  """Decodes one raw line (bad UTF-8 replaced by U+FFFD), strips it and cuts it to max_chars."""
  return raw.decode('utf-8', errors='replace').strip()[:max_chars]


def iter_file_lines(path: str, max_chars: int) -> Iterator[str]:
  """Lines of one text file (local or gs://, .gz decompressed), cleaned with `clean_line`."""
  with tf.io.gfile.GFile(path, 'rb') as raw_file:
    stream = gzip.GzipFile(fileobj=raw_file) if path.endswith('.gz') else raw_file
    for raw in io.BufferedReader(stream) if path.endswith('.gz') else stream:
      yield clean_line(raw, max_chars)


def iter_files_texts(files: Sequence[str], max_chars: int) -> Iterator[str]:
  """Non-empty lines of several files in order (for tokenizer training)."""
  for path in files:
    for line in iter_file_lines(path, max_chars):
      if line:
        yield line
