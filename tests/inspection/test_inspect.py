"""The RTD inspector on a tiny trained run and on its Hugging Face export.

One tiny pre-training run (`trained_tiny_run` in conftest.py: text files with their own
SentencePiece model, two checkpoints, eval records in metrics.jsonl) feeds these tests and
tests/test_plot.py's real-metrics test.
"""

import dataclasses
import html.parser
import re
import shutil
import subprocess

import jax
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from electra_jax import errors
from electra_jax import inspect
from electra_jax.core import objective
from electra_jax.data import masking
from electra_jax.data import pretraining
from electra_jax.data import tokenizers
from electra_jax.errors import UserError
from electra_jax.inspection import detection
from electra_jax.inspection import examples
from electra_jax.inspection import html_page
from electra_jax.inspection import loading
from electra_jax.inspection import terminal
from electra_jax.interop import export
from electra_jax.interop import pretrained as pretrained_lib
from electra_jax.spec import run as run_spec
from saved_params import restore_params  # tests/saved_params.py

TEXT = ('the value of the key is the name of the file in the list, and the list is the '
        'result of the call to the function with the default value of the string')
BIAS = 50.0  # added to one token's generator bias: it is then sampled at every masked position


@pytest.fixture(scope='module')
def run(trained_tiny_run):
  return trained_tiny_run


@pytest.fixture(scope='module')
def hf_export(run, tmp_path_factory):
  dst = tmp_path_factory.mktemp('inspect_export') / 'hf'
  export.write_hf(pretrained_lib.load_checkpoint(run.workdir), str(dst))
  return dst


@pytest.fixture(scope='module')
def checkpoint(run):
  return loading.load(run.workdir)


def _text_batch(checkpoint, rows=16):
  """TEXT `rows` times: each row gets its own mask and sample."""
  ids, types = examples.encode_text(checkpoint, TEXT)
  assert ids.shape[1] == 32  # truncated to the run's sequence length: no padding, 4 mask slots
  return np.repeat(ids, rows, axis=0), np.repeat(types, rows, axis=0)


def _frequent_token(ids):
  values, counts = np.unique(ids[0, 1:-1], return_counts=True)
  return int(values[np.argmax(counts)])


def _with_generator_bias(checkpoint, token_id):
  gen_params = jax.tree.map(np.array, checkpoint.pretrained.gen_params)
  gen_params['generator_lm_head']['bias'][token_id] += BIAS
  return dataclasses.replace(
      checkpoint, pretrained=dataclasses.replace(checkpoint.pretrained, gen_params=gen_params))


def _recompute(run, ids, types, inspections, seed, bias_token=None):
  """(sampled [n, K], corrupted [n, L], P(replaced) [n, L]) from the jointly trained params.

  Read with plain orbax and applied with the pretrainer, not through the inspector's loaders;
  the mask is checked against `mask_batch` with the run's options (4 slots at length 32).
  """
  tokenizer = tokenizers.SentencePieceTokenizer(run.config.tokenizer.path)
  options = pretraining.masking_options_for(run_spec.load(run.config), tokenizer)
  assert options.max_predictions == 4
  expected_mask = masking.mask_batch(
      {'input_ids': tf.constant(ids), 'token_type_ids': tf.constant(types)},
      tf.constant([seed, detection._SALT_MASK], tf.int64), options)
  positions = np.stack([np.flatnonzero(x.masked) for x in inspections])  # [n, 4]
  generator_input = np.stack([x.generator_input_ids for x in inspections])
  np.testing.assert_array_equal(generator_input, expected_mask['masked_input_ids'].numpy())
  np.testing.assert_array_equal(positions, expected_mask['masked_lm_positions'].numpy())

  spec = run_spec.load(run.config)
  model = spec.objective.build_model(spec)
  params = jax.tree.map(np.array, restore_params(run.workdir, 4))  # writable copies
  if bias_token is not None:
    params['generator']['generator_lm_head']['bias'][bias_token] += BIAS
  gen_logits = model.apply({'params': params}, generator_input, types, np.ones_like(ids),
                           positions, method=model.generator_logits)
  originals = np.take_along_axis(ids, positions, axis=1)
  sampled = objective.sample_tokens(gen_logits, detection.sample_keys(seed, len(ids)), originals)
  corrupted = np.asarray(objective.corrupt_input(ids, positions, sampled, np.ones(positions.shape)))
  disc_logits = model.apply({'params': params}, corrupted, types, np.ones_like(ids),
                            method=model.discriminator_logits)
  return np.asarray(sampled), corrupted, np.asarray(jax.nn.sigmoid(disc_logits))


def test_replaced_tokens_are_flagged_where_the_sampler_replaced_them(run, checkpoint):
  ids, types = _text_batch(checkpoint)
  # The trained generator (near uniform after 4 steps): its samples depend on the keys.
  # Then one that always samples a frequent token: where that token was the original, the masked
  # token is kept (not replaced); elsewhere it is replaced. Both cases occur in 16 rows.
  token = _frequent_token(ids)
  for seed, bias_token in ((3, None), (4, token)):
    source = checkpoint if bias_token is None else _with_generator_bias(checkpoint, token)
    inspections = detection.inspect_examples(source, ids, types, seed=seed)
    sampled, corrupted, p_replaced = _recompute(run, ids, types, inspections, seed, bias_token)
    replaced = np.stack([x.replaced for x in inspections])
    np.testing.assert_array_equal(np.stack([x.corrupted_ids for x in inspections]), corrupted)
    np.testing.assert_array_equal(replaced, corrupted != ids)
    np.testing.assert_allclose(np.stack([x.p_replaced for x in inspections]), p_replaced,
                               atol=1e-5)
    masked = np.stack([x.masked for x in inspections])
    assert not (replaced & ~masked).any()  # only a masked token can be replaced
    if bias_token is None:
      assert len(np.unique(sampled)) > 20  # many different samples: the keys matter
    else:
      assert (sampled == token).all()
      assert replaced.sum() > 0 and (masked & ~replaced).sum() > 0, 'both cases must occur'

    # The terminal output marks exactly those tokens.
    for inspection in inspections:
      rows = terminal.render_terminal([inspection], color=False).splitlines()[4:]
      assert [int(row.split()[0]) for row in rows if 'REPLACED' in row] == list(
          np.flatnonzero(inspection.replaced))
      assert [int(row.split()[0]) for row in rows if re.search(r'\ssame\s', row)] == list(
          np.flatnonzero(inspection.masked & ~inspection.replaced))


def _arrays(inspections):
  return {field: np.stack([getattr(x, field) for x in inspections])
          for field in ('input_ids', 'masked', 'generator_input_ids', 'corrupted_ids',
                        'p_replaced')}


def test_the_hf_export_inspects_the_same(checkpoint, hf_export):
  ids, types = _text_batch(checkpoint)
  ours = _arrays(detection.inspect_examples(checkpoint, ids, types, seed=7))
  exported = loading.load(str(hf_export))
  assert not exported.is_workdir and exported.spec.seq_length == 32
  hf_ids, hf_types = _text_batch(exported)
  np.testing.assert_array_equal(hf_ids, ids)
  theirs = _arrays(detection.inspect_examples(exported, hf_ids, hf_types, seed=7))
  for field in ('input_ids', 'masked', 'generator_input_ids', 'corrupted_ids'):
    np.testing.assert_array_equal(theirs[field], ours[field], err_msg=field)
  np.testing.assert_allclose(theirs['p_replaced'], ours['p_replaced'], atol=1e-5)
  assert ours['masked'].sum() == 16 * 4 and ours['p_replaced'].std() > 0

  # A discriminator alone scores the text as typed; masking and sampling need the generator.
  alone = loading.load(str(hf_export / 'discriminator'))
  assert alone.pretrained.gen_params is None
  with pytest.raises(UserError, match='no generator.*--score_as_typed'):
    detection.inspect_examples(alone, ids[:1], types[:1])
  typed = detection.inspect_examples(alone, ids[:1], types[:1], as_typed=True)[0]
  assert not typed.masked.any() and not typed.replaced.any()
  np.testing.assert_array_equal(typed.corrupted_ids, ids[0])
  np.testing.assert_allclose(typed.p_replaced, detection.inspect_examples(
      checkpoint, ids[:1], types[:1], as_typed=True)[0].p_replaced, atol=1e-5)


def test_from_eval_takes_the_runs_held_out_examples(run, checkpoint):
  input_ids, types = examples.eval_examples(checkpoint, 3)
  assert input_ids.shape == (3, 32)
  inspections = detection.inspect_examples(checkpoint, input_ids, types, seed=0)
  eval_text = ' '.join(open(run.eval_file, encoding='utf-8').read().split())
  tokenizer = checkpoint.tokenizer
  for inspection in inspections:
    assert inspection.input_ids[0] == tokenizer.cls_id
    assert inspection.input_ids[-1] == tokenizer.sep_id
    assert len(inspection.input_ids) == len(inspection.pieces) <= 32
    assert tokenizer.pad_id not in inspection.input_ids  # padding is not shown
    for word in tokenizer.decode(inspection.input_ids).split():
      assert word in eval_text, word
  with pytest.raises(UserError, match='--from_eval needs a pre-training run'):
    examples.eval_examples(dataclasses.replace(checkpoint, pretrained=dataclasses.replace(
        checkpoint.pretrained, source_config=None)), 1)


class _Spans(html.parser.HTMLParser):
  """Collects the token spans and every src/href of a page."""

  def __init__(self):
    super().__init__()
    self.tokens, self.links, self.tags = [], [], set()

  def handle_starttag(self, tag, attrs):
    attrs = dict(attrs)
    self.tags.add(tag)
    self.links += [attrs[k] for k in ('src', 'href') if k in attrs]
    if tag == 'span' and 'tok' in attrs.get('class', '').split():
      self.tokens.append(attrs)


def _page(checkpoint, inspections):
  return html_page.render_html(inspections, source='run <1> & "co"',
                             special_ids=checkpoint.tokenizer.special_ids())


def test_html_is_self_contained_and_shades_each_token(checkpoint, tmp_path):
  ids, types = _text_batch(checkpoint, rows=2)
  inspections = detection.inspect_examples(
      _with_generator_bias(checkpoint, _frequent_token(ids)), ids, types, seed=1)
  page = _page(checkpoint, inspections)
  parser = _Spans()
  parser.feed(page)
  assert not [link for link in parser.links if re.match(r'(https?:)?//', link)]
  assert not parser.tags & {'script', 'link', 'img', 'iframe'}
  assert 'run &lt;1&gt; &amp; &quot;co&quot;' in page and 'run <1>' not in page
  expected = [x for inspection in inspections for x in zip(
      inspection.p_replaced, inspection.replaced, inspection.masked)]
  assert len(parser.tokens) == len(expected) == 64
  for attrs, (p, replaced, masked) in zip(parser.tokens, expected):
    classes = attrs['class'].split()
    assert ('replaced' in classes) == replaced
    assert ('masked' in classes) == (masked and not replaced)
    assert float(attrs['data-p']) == pytest.approx(p, abs=1e-6)
    alpha = float(re.fullmatch(r'background-color: rgba\(220, 38, 38, ([0-9.]+)\)',
                               attrs['style']).group(1))
    assert alpha == pytest.approx(p, abs=1e-3)  # the shade follows P(replaced)

  # Tokens are escaped, whatever they hold.
  odd = dataclasses.replace(inspections[0], pieces=['<script>'] * 32,
                            corrupted_pieces=['\u2581a&b<i>'] * 32)
  page = _page(checkpoint, [odd])
  assert '<script>' not in page and '<i>' not in page and 'a&amp;b&lt;i&gt;' in page

  chromium = shutil.which('chromium')
  if chromium:  # a real render: the browser parses the same tokens and paints the shades
    browser = [chromium, '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
               '--window-size=1000,600']

    def render(shown, name):
      path = tmp_path / f'{name}.html'
      path.write_text(_page(checkpoint, shown), encoding='utf-8')
      dom = subprocess.run(browser + ['--dump-dom', path.as_uri()], capture_output=True,
                           text=True, timeout=120, check=True).stdout
      screenshot = tmp_path / f'{name}.png'
      subprocess.run(browser + [f'--screenshot={screenshot}', path.as_uri()],
                     capture_output=True, timeout=120, check=True)
      from PIL import Image  # noqa: PLC0415 - matplotlib's dependency
      pixels = np.asarray(Image.open(screenshot).convert('RGB')).astype(int)
      red = (pixels[..., 0] > pixels[..., 1] + 60) & (pixels[..., 0] > pixels[..., 2] + 60)
      blue_outline = ((abs(pixels - np.array([29, 78, 216])).sum(-1)) < 60)
      return dom, int(red.sum()), int(blue_outline.sum())

    dom, _, _ = render(inspections, 'rtd')
    rendered = _Spans()
    rendered.feed(dom)
    assert [a['data-p'] for a in rendered.tokens] == [a['data-p'] for a in parser.tokens]
    # The paint follows P(replaced), whatever the trained model scores: shaded at 0.9, bare at 0
    # (only the legend stays red).
    shade = lambda p: [dataclasses.replace(i, p_replaced=np.full_like(i.p_replaced, p))
                       for i in inspections]
    _, red_high, blue_outline = render(shade(0.9), 'high')
    _, red_none, _ = render(shade(0.0), 'none')
    assert red_high > 1000 + 10 * red_none and blue_outline > 50  # (the legend is red at any P)


def test_colour_only_on_a_terminal(checkpoint, monkeypatch):
  ids, types = _text_batch(checkpoint, rows=1)
  inspections = detection.inspect_examples(checkpoint, ids, types, seed=0)
  coloured = terminal.render_terminal(inspections, color=True, source='run')
  plain = terminal.render_terminal(inspections, color=False, source='run')
  assert '\x1b[' in coloured and '\x1b[' not in plain
  assert re.sub(r'\x1b\[[0-9;]*m', '', coloured) == plain

  class Stream:
    def __init__(self, tty):
      self.isatty = lambda: tty

  monkeypatch.delenv('NO_COLOR', raising=False)
  assert terminal.use_color(Stream(True)) and not terminal.use_color(Stream(False))
  assert terminal.use_color(Stream(False), 'always')
  assert not terminal.use_color(Stream(True), 'never')
  monkeypatch.setenv('NO_COLOR', '1')
  assert not terminal.use_color(Stream(True))


def _cli(*argv):
  """Runs the CLI in-process (as `python -m electra_jax.inspect ARGV` does, minus the imports)."""
  values = flags.FlagValues()
  inspect.define_flags(values)
  errors.guard(inspect.main)(values(['inspect', *argv]), values)  # as startup.run runs it


def _cli_error(capsys, *argv) -> str:
  """The CLI's one-line error on `argv` (exit status 2 asserted)."""
  with pytest.raises(SystemExit) as exit_info:
    _cli(*argv)
  assert exit_info.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith('error: '), err
  return err[0]


def test_user_mistakes_are_one_line_errors(run, hf_export, tmp_path, capsys):
  w = f'--workdir={run.workdir}'
  assert '--workdir is required' in _cli_error(capsys, '--text=hi')
  assert 'exactly one of --text' in _cli_error(capsys, w)
  assert 'exactly one of --text' in _cli_error(capsys, w, '--text=hi', '--from_eval=2')
  assert '--text is empty' in _cli_error(capsys, w, '--text=  ')
  assert 'does not exist' in _cli_error(capsys, f'--workdir={tmp_path}/missing', '--text=hi')
  assert 'no checkpoint at step 3; it has steps [2, 4]' in _cli_error(capsys, w, '--step=3',
                                                                      '--text=hi')
  assert 'no generator' in _cli_error(capsys, f'--workdir={hf_export}/discriminator', '--text=hi')
  assert '--from_eval needs a pre-training run' in _cli_error(
      capsys, f'--workdir={hf_export}', '--from_eval=1')
  existing = tmp_path / 'page.html'
  existing.write_text('mine')
  assert 'already exists: pass --overwrite' in _cli_error(capsys, w, '--text=hi',
                                                          f'--html={existing}')
  assert existing.read_text() == 'mine'
  assert 'does not exist' in _cli_error(capsys, w, '--text=hi', f'--html={tmp_path}/no/page.html')
  assert 'cannot write' in _cli_error(capsys, w, '--text=hi', '--html=/proc/page.html')
  assert 'unexpected arguments' in _cli_error(capsys, w, '--text=hi', 'stray')


def test_cli_prints_plain_text_when_piped_and_writes_the_page(run, tmp_path, capsys,
                                                            monkeypatch):
  monkeypatch.delenv('NO_COLOR', raising=False)
  page = tmp_path / 'rtd.html'
  _cli(f'--workdir={run.workdir}', '--step=2', f'--text={TEXT}', '--seed=5', f'--html={page}')
  out, err = capsys.readouterr()  # captured: not a terminal
  assert f'{run.workdir} (step 2)' in out and '\x1b[' not in out
  assert out.count('REPLACED') + len(re.findall(r'\ssame\s', out)) == 4
  assert 'note: the text has' in err  # truncated to the 32-token sequence length
  parser = _Spans()
  parser.feed(page.read_text(encoding='utf-8'))
  assert len(parser.tokens) == 32
  _cli(f'--workdir={run.workdir}', f'--text={TEXT}', '--seed=5', f'--html={page}', '--overwrite',
       '--score_as_typed')
  out = capsys.readouterr().out
  assert 'scored as typed' in out and 'REPLACED' not in out
  _cli(f'--workdir={run.workdir}', '--text=a')  # fewer tokens than mask slots: padded as in training
  out = capsys.readouterr().out
  assert '3 tokens, 1 masked' in out
