"""Reading collectives from HLO text (`parallel/hlo.py`), on hand-written HLO: no compile needed."""

from electra_jax.parallel import hlo

# The shapes of a TPU v6e program's gradient reduction under fsdp=8, trimmed: the fused
# all-reduce + dynamic-slice that TPU runs as one reduce-scatter, a plain all-reduce of a
# replicated bias, and an all-gather.
_TPU_PROGRAM = """\
HloModule jit_train_step, entry_computation_layout={(f32[32,1024]{1,0})->f32[32,1024]{1,0}}

%add.1.clone (x: f32[], y: f32[]) -> f32[] {
  %x = f32[] parameter(0)
  %y = f32[] parameter(1)
  ROOT %add = f32[] add(%x, %y)
}

%all-reduce-scatter.29 (input_0: f32[256,1024], input_1: f32[128,256]) -> (f32[32,1024], f32[16,256]) {
  %input_0 = f32[256,1024]{1,0:T(8,128)} parameter(0)
  %input_1 = f32[128,256]{1,0:T(8,128)} parameter(1)
  %all-reduce.2 = (f32[256,1024]{1,0:T(8,128)}, f32[128,256]{1,0:T(8,128)}) all-reduce(%input_0, %input_1), channel_id=4, to_apply=%add.1.clone
  %get-tuple-element.0 = f32[256,1024]{1,0:T(8,128)} get-tuple-element(%all-reduce.2), index=0
  %get-tuple-element.1 = f32[128,256]{1,0:T(8,128)} get-tuple-element(%all-reduce.2), index=1
  %dynamic-slice.3 = f32[32,1024]{1,0:T(8,128)} dynamic-slice(%get-tuple-element.0, %o, %z), dynamic_slice_sizes={32,1024}
  %dynamic-slice.4 = f32[16,256]{1,0:T(8,128)} dynamic-slice(%get-tuple-element.1, %o, %z), dynamic_slice_sizes={16,256}
  ROOT %tuple = (f32[32,1024]{1,0:T(8,128)}, f32[16,256]{1,0:T(8,128)}) tuple(%dynamic-slice.3, %dynamic-slice.4)
}

ENTRY %main.300_spmd (param.1: f32[32,1024], param.2: f32[2,64]) -> f32[32,1024] {
  %param.1 = f32[32,1024]{1,0:T(8,128)} parameter(0)
  %param.2 = f32[2,64]{1,0:T(2,128)} parameter(1)
  %all-gather = f32[256,1024]{1,0:T(8,128)} all-gather(%param.1), channel_id=1, dimensions={0}
  %fusion.528 = (f32[32,1024]{1,0:T(8,128)S(3)}, f32[16,256]{1,0:T(8,128)S(3)}) fusion(%all-gather, %all-gather), kind=kCustom, calls=%all-reduce-scatter.29, metadata={op_name="jit(train_step)/transpose(jvp())/dot_general"}
  %all-reduce.288 = f32[2,64]{1,0:T(2,128)S(3)} all-reduce(%param.2), channel_id=68, to_apply=%add.1.clone
  ROOT %get-tuple-element.9 = f32[32,1024]{1,0:T(8,128)} get-tuple-element(%fusion.528), index=0
}
"""


def test_a_tpu_all_reduce_scatter_fusion_counts_as_one_reduce_scatter_of_its_shards():
  found = hlo.collectives(_TPU_PROGRAM)
  assert found['reduce-scatter'] == [4 * (32 * 1024 + 16 * 256)]
  # The all-reduce inside the fusion is not a separate (whole-gradient) all-reduce.
  assert found['all-reduce'] == [4 * 2 * 64]
  assert found['all-gather'] == [4 * 256 * 1024]


def test_without_the_fusion_the_same_ops_are_an_all_reduce_of_the_whole_gradient():
  # v3/v4 programs: libtpu leaves the all-reduce and the slice apart (no fusion computation).
  unfused = _TPU_PROGRAM.replace('all-reduce-scatter.29', 'fused_computation.29')
  found = hlo.collectives(unfused)
  assert found['reduce-scatter'] == []
  assert sorted(found['all-reduce']) == [4 * 2 * 64, 4 * (256 * 1024 + 128 * 256)]
