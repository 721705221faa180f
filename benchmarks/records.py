"""The result record: one measurement's fields, what each means, and queries over records.

``results.json`` holds ``{"meta", "records", "noise_scale", "summary"}``; :class:`Record` is one
of its records, and :data:`RECORD_FIELDS` (derived from it) documents every field (the README
quotes it). :func:`make_record` builds every record the suite writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, TypedDict, get_type_hints

__all__ = ["RECORD_FIELDS", "Record", "groups", "make_record", "ok", "where"]

Spread = dict[str, float]  # benchmarks.harness.spread: {median, min, max, p25, p75, rel_iqr}


class Record(TypedDict):
    """One workload x implementation x batch size of one benchmark; a field not measured there
    is None. Each annotation carries the field's description (see :data:`RECORD_FIELDS`)."""

    benchmark: Annotated[str, '"throughput" (MNIST-shaped data) or "time_to_accuracy" (digits)']
    workload: Annotated[str, "logreg / mlp / cnn / lstm"]
    model: Annotated[str, "the model, in words"]
    dataset: Annotated[str, 'data set name ("digits", "synthetic_mnist@8x8", "mnist", ...)']
    data_source: Annotated[str, '"real" or "synthetic"']
    implementation: Annotated[
        str,
        "fnn_fused, fnn_unfused, fnn_fused_nnx, fnn_fused_bf16, fnn_iterable, flax_loop, "
        "flax_scan, nnx_loop, keras_spe1, keras_spe64, torch_eager",
    ]
    label: Annotated[str, "human-readable implementation name"]
    family: Annotated[str, "fnn / flax / keras / torch"]
    batch_size: Annotated[int, "examples per step (the full training set for full-batch GD)"]
    mode: Annotated[str, '"sgd" (batch 1), "minibatch" or "full"']
    n_train: Annotated[int, "training examples"]
    learning_rate: Annotated[
        float, "SGD learning rate used (momentum 0.9), the same for every implementation"
    ]
    status: Annotated[str, '"ok", "skipped" (not installed; see reason) or "error"']
    reason: Annotated[str | None, "why skipped / failed, else null"]
    device: Annotated[str, "cpu / gpu / tpu"]
    device_kind: Annotated[str, "JAX device kind"]
    versions: Annotated[
        dict[str, str | None],
        "python, jax, jaxlib, flax, optax, numpy, keras, torch versions (null: absent)",
    ]
    steps_per_epoch: Annotated[int | None, "optimizer steps per epoch"]
    samples_per_epoch: Annotated[
        int | None, "examples trained per epoch (less than n_train if it drops a remainder)"
    ]
    samples_per_s: Annotated[
        float | None, "median training throughput over the repeats, compile excluded"
    ]
    samples_per_s_spread: Annotated[
        Spread | None, "{median, min, max, p25, p75, rel_iqr} of the repeats"
    ]
    samples_per_s_repeats: Annotated[
        list[float] | None, "every repeat's samples/s, in measurement order"
    ]
    repeats: Annotated[
        int | None,
        "timed repeats, interleaved with the other implementations (a Williams design)",
    ]
    epochs_per_repeat: Annotated[int | None, "epochs in one timed repeat"]
    step_time_us: Annotated[float | None, "median wall time of one optimizer step, microseconds"]
    first_epoch_s: Annotated[float | None, "wall time of the first epoch, compilation included"]
    compile_s: Annotated[
        float | None, "first epoch minus a steady-state epoch: compile and warm-up cost"
    ]
    flops_per_example: Annotated[
        float | None, "model FLOPs per training example (matmuls + convs, fwd + bwd)"
    ]
    flops_per_s: Annotated[float | None, "flops_per_example x samples_per_s"]
    fraction_of_peak: Annotated[
        float | None,
        "flops_per_s / measured f32 matmul peak (meta.matmul_peak: the best of "
        "measurements taken before, between and after the groups)",
    ]
    matmul_bound: Annotated[
        dict[str, Any] | None,
        "full batch only: the step's matmuls and convolutions alone (same shapes, "
        "random operands, one program), timed in the same rounds: {samples_per_s, "
        "samples_per_s_spread, samples_per_s_repeats, flops_per_s, fraction_of_peak, shapes}; "
        "null at other batch sizes and for steps that loop over their matmuls (the LSTM)",
    ]
    fraction_of_matmul_bound: Annotated[
        float | None,
        "samples_per_s / matmul_bound.samples_per_s: how close the "
        "whole step runs to the speed of its own matmuls",
    ]
    input_call_s: Annotated[
        float | None,
        "fnn_iterable throughput only: seconds an iterator of its Grain loader costs per fit "
        "call (one per timed repeat): starting it up to its first batch, less one batch's "
        "reading, and closing it, waiting for the batch it reads ahead; null elsewhere",
    ]
    input_read_epoch_s: Annotated[
        float | None,
        "fnn_iterable throughput only: seconds to read one epoch's batches from its Grain "
        "loader alone, no training (median over epochs); null elsewhere",
    ]
    input_source_epoch_s: Annotated[
        float | None,
        "fnn_iterable throughput only: seconds to read the same number of batches straight "
        "from the loader's source (shuffled indices, a batch at a time) and stack them, "
        "without Grain's per-example pipeline; null elsewhere",
    ]
    input_copy_epoch_s: Annotated[
        float | None,
        "fnn_iterable throughput only: seconds to stack one epoch's batches and copy them to "
        "the device, no training; null elsewhere",
    ]
    target_accuracy: Annotated[float | None, "time_to_accuracy: test accuracy to reach"]
    time_to_target_s: Annotated[
        float | None,
        "training seconds (compile and evaluation excluded) until the test "
        "accuracy first reached target_accuracy; null if not within the limits",
    ]
    epochs_to_target: Annotated[int | None, "epochs until then"]
    final_loss_at_budget: Annotated[
        float | None, "training-set loss after exactly budget_examples examples"
    ]
    final_accuracy_at_budget: Annotated[
        float | None, "training-set accuracy after budget_examples examples"
    ]
    budget_examples: Annotated[int | None, "the fixed example budget"]
    final_test_accuracy: Annotated[float | None, "test accuracy when the run stopped"]
    train_s: Annotated[float | None, "training seconds of the whole run"]
    epochs: Annotated[int | None, "epochs of the whole run"]
    curve: Annotated[
        list[dict[str, float]] | None,
        "[{time_s, epochs, examples, test_accuracy, test_loss}] after every epoch",
    ]
    peak_memory_bytes: Annotated[
        int | None, "process peak memory so far (device peak_bytes_in_use, else host max RSS)"
    ]
    memory_source: Annotated[str | None, '"device_peak_bytes_in_use" or "host_max_rss"']
    memory_delta_bytes: Annotated[
        int | None, "growth of host RSS over this implementation's setup + first epoch"
    ]


RECORD_FIELDS: dict[str, str] = {
    name: hint.__metadata__[0] for name, hint in get_type_hints(Record, include_extras=True).items()
}


def make_record(**fields: Any) -> Record:
    """A record with every field of the schema, in its order; fields not given are None.

    Raises:
      KeyError: for a field that is not in the schema.
    """
    unknown = sorted(set(fields) - set(RECORD_FIELDS))
    if unknown:
        raise KeyError(f"not record fields: {unknown}")
    return Record(**{name: fields.get(name) for name in RECORD_FIELDS})


def where(records: Iterable[Record], **match: Any) -> list[Record]:
    """The records whose fields equal ``match``."""
    return [r for r in records if all(r.get(k) == v for k, v in match.items())]


def ok(records: Iterable[Record], **match: Any) -> list[Record]:
    """The successful records with a throughput whose fields equal ``match``."""
    return [r for r in where(records, status="ok", **match) if r.get("samples_per_s")]


def groups(records: Iterable[dict], keys: tuple[str, ...]) -> dict[tuple, list[dict]]:
    """``records`` grouped by their values of ``keys``, in order of first appearance."""
    out: dict[tuple, list[dict]] = {}
    for r in records:
        out.setdefault(tuple(r[k] for k in keys), []).append(r)
    return out
