"""Raw text before tokenisation: the built-in corpus and text files, as documents of lines.

The common format everywhere is the original ELECTRA builder's: one sentence (or line) per line and
a blank line between documents. This module turns each source into that format on the Python side:

* the **built-in corpus** ships with every Python install (the reference documentation in
  `pydoc_data.topics` plus the docstrings of the standard library's own source files), so the quick
  start and the tests need no download. It is cut into a fixed number of document-aligned shards;
* **text files** are paths, globs or comma-separated lists of them, read through `tf.io.gfile` so
  that `gs://` works, `.gz` included.

The tf.data side of reading (per-host sharding, epochs) lives in `sources.py`; the Python iterators
here feed the tokenizer trainer and the tests.
"""

import ast
import dataclasses
import functools
import gzip
import io
import pathlib
import re
import sys
import sysconfig
from typing import Iterator, Sequence

import tensorflow as tf

from electra_jax.errors import UserError

# Bump when the way the built-in corpus is assembled changes: it keys the tokenizer cache.
BUILTIN_CORPUS_VERSION = 2
# Document-aligned shards of the built-in corpus: enough for 16 hosts to each read their own.
BUILTIN_NUM_SHARDS = 16
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


def _stdlib_docstrings() -> Iterator[str]:
  """Long docstrings of the standard library's Python sources, read with `ast` (nothing imported)."""
  root = pathlib.Path(sysconfig.get_paths()['stdlib'])
  skip_parts = {'site-packages', 'dist-packages', 'test', 'tests', 'idlelib', '__pycache__'}
  for path in sorted(root.rglob('*.py')):
    if skip_parts.intersection(path.relative_to(root).parts):
      continue
    try:
      tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError, OSError):
      continue  # a broken or unreadable file in someone's stdlib is no reason to fail
    for node in ast.walk(tree):
      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        docstring = ast.get_docstring(node)
        if docstring and len(docstring) >= _MIN_DOCSTRING_CHARS:
          yield docstring


@functools.cache
def builtin_corpus() -> BuiltinCorpus:
  """Builds (once per process, a few seconds) the built-in corpus."""
  import pydoc_data.topics  # pylint: disable=g-import-not-at-top

  documents = []
  for topic in sorted(pydoc_data.topics.topics):
    documents.extend(_split_document(pydoc_data.topics.topics[topic]))
  for docstring in _stdlib_docstrings():
    documents.extend(_split_document(docstring))
  # The stdlib repeats some docstrings (inherited or copied APIs): keep each document once, so
  # that no held-out document also appears in training.
  unique = dict.fromkeys(tuple(d) for d in documents if d)
  return BuiltinCorpus(documents=tuple(unique))


def builtin_corpus_key() -> str:
  """Identifies the built-in corpus without building it (for cache names)."""
  version = f'{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}'
  return f'py{version}-c{BUILTIN_CORPUS_VERSION}'


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
