"""The progress line's throughput figures, with a fake clock."""

import pytest

from electra_jax import reporting


def test_data_wait_fraction_is_the_share_of_the_window_spent_waiting(monkeypatch):
  clock = iter([100.0, 110.0, 110.0, 114.0])  # start, measure, (re)start, measure
  monkeypatch.setattr(reporting.time, 'perf_counter', lambda: next(clock))
  throughput = reporting.Throughput(tokens_per_step=10, flops_per_step=1e12, num_devices=1,
                                    peak_tflops=None)
  throughput.start(0)
  throughput.add_data_wait(2.0)
  throughput.add_data_wait(0.5)
  first = throughput.measure(5)  # 5 steps in 10 s, 2.5 s of them waiting for batches
  assert first['data_wait_fraction'] == pytest.approx(0.25)
  assert first['tokens_per_sec'] == pytest.approx(5.0)
  throughput.start(5)  # e.g. after an eval: the wait is counted afresh
  assert throughput.measure(6)['data_wait_fraction'] == 0.0
  assert 'data_wait 25.0%' in reporting.progress_line(5, 10, first)
