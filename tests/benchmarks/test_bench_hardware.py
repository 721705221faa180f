"""Device detection, versions, matmul peak and the jaxpr FLOP counter."""

import jax
import jax.numpy as jnp
import pytest

from benchmarks import hardware
from benchmarks.runners.jax_runners import step_matmul_program, train_step_flops
from benchmarks.workloads import Dataset, get_workload


def test_count_flops_dot_conv_scan():
    assert hardware.count_flops(jnp.dot, jnp.ones((8, 4)), jnp.ones((4, 2))) == 2 * 8 * 4 * 2
    batched = hardware.count_flops(jnp.matmul, jnp.ones((3, 5, 4)), jnp.ones((3, 4, 6)))
    assert batched == 2 * 3 * 5 * 4 * 6

    def conv(x, k):
        return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))  # fmt: skip

    flops = hardware.count_flops(conv, jnp.ones((2, 8, 8, 3)), jnp.ones((3, 3, 3, 16)))
    assert flops == 2 * (2 * 8 * 8 * 16) * (3 * 3 * 3)

    def scanned(x, w):
        return jax.lax.scan(lambda c, xi: (jnp.tanh(c @ w + xi), None), x[0], x)[0]

    assert hardware.count_flops(scanned, jnp.ones((7, 2, 4)), jnp.ones((4, 4))) == 7 * 2 * 2 * 4 * 4


def test_train_step_flops_of_the_mlp_is_about_six_n_params():
    data = Dataset("d", "synthetic", jnp.zeros((64, 64)), jnp.zeros(64), jnp.zeros((8, 64)),
                   jnp.zeros(8), 10)  # fmt: skip
    n_params = 64 * 256 + 256 * 256 + 256 * 10
    flops = train_step_flops(get_workload("mlp"), data, 32)
    # forward 2N, backward 4N, minus the input-gradient of the first layer (2 * 64 * 256).
    assert flops == 32 * (6 * n_params - 2 * 64 * 256)


def test_detect_device_and_versions():
    dev = hardware.detect_device()
    assert dev["platform"] == jax.default_backend()
    assert dev["device_count"] >= 1 and dev["summary"]
    v = hardware.versions()
    for key in ("python", "jax", "jaxlib", "flax", "optax", "numpy", "keras", "torch"):
        assert key in v
    assert v["jax"] == jax.__version__


def test_matmul_peak_and_memory():
    peak = hardware.matmul_peak(64, repeats=2)
    assert peak["flops_per_s"] > 0 and peak["n"] == 64 and len(peak["seconds"]) == 2
    used, source = hardware.peak_memory()
    assert used is None or used > 0
    assert source in ("device_peak_bytes_in_use", "host_max_rss")


@pytest.mark.parametrize("spec,n,expected", [(1, 10, "sgd"), (4, 10, "minibatch"),
                                             (10, 10, "full")])  # fmt: skip
def test_mode_of(spec, n, expected):
    from benchmarks.config import mode_of

    assert mode_of(spec, n) == expected


def test_matmul_program_runs_exactly_the_steps_matmuls():
    def step(x, w1, w2):
        h = jnp.tanh(x @ w1)  # elementwise work is left out of the program
        return jax.grad(lambda w: jnp.sum(jax.nn.relu(h @ w)))(w2)

    args = (jnp.ones((16, 8)), jnp.ones((8, 32)), jnp.ones((32, 4)))
    program = hardware.matmul_program(step, *args)
    assert program is not None
    # x @ w1, h @ w2, and the weight gradient h^T @ g: three dots, as counted.
    assert program.flops == hardware.count_flops(step, *args) == 2 * 16 * (8 * 32 + 2 * 32 * 4)
    # The weight gradient contracts the batch axis of the output gradient [16, 4] and h.
    assert program.shapes == [((16, 8), (8, 32)), ((16, 32), (32, 4)), ((16, 4), (16, 32))]
    outs = jax.block_until_ready(program())
    assert len(outs) == 3
    # Its dots compute what jnp computes on the same operands.
    a, b = program.operands[0]
    eqn_out = outs[0]
    assert eqn_out.shape == (16, 32)
    assert jnp.allclose(eqn_out, a @ b, rtol=1e-5, atol=1e-5)
    # Nothing else is in the compiled program's entry besides the dots and the parameters.
    hlo = program.compiled_text()
    assert "tanh" not in hlo and "maximum" not in hlo


def test_matmul_program_of_a_convolution_and_a_loop():
    def conv(x, k):
        return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))  # fmt: skip

    program = hardware.matmul_program(conv, jnp.ones((2, 8, 8, 3)), jnp.ones((3, 3, 3, 16)))
    assert program.flops == 2 * (2 * 8 * 8 * 16) * (3 * 3 * 3)
    assert jax.block_until_ready(program())[0].shape == (2, 8, 8, 16)

    def scanned(x, w):
        return jax.lax.scan(lambda c, xi: (jnp.tanh(c @ w + xi), None), x[0], x)[0]

    # A loop over matmuls (an RNN over time) is not reduced to a loop-free program.
    assert hardware.matmul_program(scanned, jnp.ones((7, 2, 4)), jnp.ones((4, 4))) is None
    assert hardware.matmul_program(jnp.tanh, jnp.ones(3)) is None  # no matmul at all


def test_matmul_program_of_the_mlp_training_step():
    data = Dataset("d", "synthetic", jnp.zeros((64, 64)), jnp.zeros(64), jnp.zeros((8, 64)),
                   jnp.zeros(8), 10)  # fmt: skip
    program = step_matmul_program(get_workload("mlp"), data, 32)
    assert program.flops == train_step_flops(get_workload("mlp"), data, 32)
    assert len(program.shapes) == 8  # 3 forward, 3 weight gradients, 2 input gradients
    assert len(jax.block_until_ready(program())) == 8
