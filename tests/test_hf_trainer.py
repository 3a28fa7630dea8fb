"""The Hugging Face Trainer integration, with a real ``transformers.Trainer`` on the CPU.

A tiny GPT-2 from a config (random weights, nothing downloaded), token ids made here, padded
batches: the parameters after one step equal a hand-made ``loss + λ·T1`` step, the penalty is in
the Trainer's log history, and a run resumed from a checkpoint continues the regulariser's tree
cache and the barcode history of an uninterrupted run.
"""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch

import topo_neurons as tn

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")

from topo_neurons.integrations.transformers import (  # noqa: E402
    REGULARIZER_FILE,
    BarcodeCallback,
    TopologicalTrainer,
)

LAYERS = ["transformer.h.0.mlp.c_fc", "transformer.h.1.mlp.c_fc"]
N_EX, SEQ = 8, 12


def _gpt2(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        n_embd=16, n_layer=2, n_head=2, n_inner=16, vocab_size=50, n_positions=SEQ,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, eos_token_id=0, bos_token_id=0,
    )  # fmt: skip
    return transformers.GPT2LMHeadModel(config)


def _examples(seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Token ids with right padding of different lengths; padded labels are -100."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for k in range(N_EX):
        ids = torch.randint(1, 50, (SEQ,), generator=gen)
        keep = torch.ones(SEQ, dtype=torch.long)
        keep[SEQ - 1 - k % 4 :] = 0  # 1 to 4 padded tokens
        ids = ids.masked_fill(keep == 0, 0)
        labels = ids.masked_fill(keep == 0, -100)
        # The first token is never a target of a causal LM (labels are shifted): -100 there
        # makes the Trainer's count of target tokens the same whether it shifts or not.
        labels[0] = -100
        rows.append({"input_ids": ids, "attention_mask": keep, "labels": labels})
    return rows


def _args(tmp_path, **kw) -> transformers.TrainingArguments:
    base = dict(
        output_dir=str(tmp_path), use_cpu=True, report_to=[], per_device_train_batch_size=N_EX,
        per_device_eval_batch_size=N_EX, optim="sgd", learning_rate=0.1,
        lr_scheduler_type="constant", max_grad_norm=0.0, weight_decay=0.0, seed=0,
        logging_steps=1, disable_tqdm=True,
    )  # fmt: skip
    base.update(kw)
    return transformers.TrainingArguments(**base)


def _batch(rows):
    return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}


def _t1_of_padded_mlp(model, batch):
    """Independent reference of the penalty: the GELU outputs of both MLPs, hooked by hand,
    padded tokens dropped by the attention mask, into T1."""
    seen = []
    hooks = [blk.mlp.act.register_forward_hook(lambda m, i, o: seen.append(o))
             for blk in model.transformer.h]  # fmt: skip
    try:
        out = model(**batch)
    finally:
        for h in hooks:
            h.remove()
    keep = batch["attention_mask"].bool()
    A = torch.cat([o[keep] for o in seen], dim=1)
    return out.loss, tn.TopologicalRedundancy()(A)


@pytest.mark.parametrize("lam", [0.5])
def test_one_trainer_step_equals_a_manual_loss_plus_lambda_t1_step(tmp_path, lam):
    model = _gpt2()
    manual, plain = copy.deepcopy(model), copy.deepcopy(model)
    rows = _examples()
    trainer = TopologicalTrainer(
        model=model, args=_args(tmp_path, max_steps=1, save_strategy="no"),
        train_dataset=rows, regularizer=tn.TopologicalRedundancy(), weight=lam, layers=LAYERS,
    )  # fmt: skip
    trainer.train()

    batch = _batch(rows)
    # the same SGD step by hand: task loss + λ·T1 of the masked MLP activations
    opt = torch.optim.SGD(manual.parameters(), lr=0.1)
    loss, t1 = _t1_of_padded_mlp(manual, batch)
    (loss + lam * t1).backward()
    opt.step()
    # and one without the penalty, to show that the penalty moved the parameters
    opt = torch.optim.SGD(plain.parameters(), lr=0.1)
    plain(**batch).loss.backward()
    opt.step()

    got, without = dict(model.named_parameters()), dict(plain.named_parameters())
    moved = 0.0
    with torch.no_grad():
        for name, p in manual.named_parameters():
            torch.testing.assert_close(got[name], p, rtol=1e-4, atol=1e-6)
            moved = max(moved, float((p - without[name]).abs().max()))
    assert moved > 1e-3  # the penalty's gradient is not negligible: the check above can fail
    np.testing.assert_allclose(float(trainer.last_penalty), lam * float(t1.detach()), rtol=1e-5)


def test_penalty_is_in_the_trainers_log_history(tmp_path):
    rows = _examples()
    trainer = TopologicalTrainer(
        model=_gpt2(), args=_args(tmp_path, max_steps=3, save_strategy="no", logging_steps=1),
        train_dataset=rows, regularizer=tn.TopologicalRedundancy(reduction="mean"), weight=2.0,
        layers=LAYERS,
    )  # fmt: skip
    penalties = []
    orig = trainer.compute_loss

    def spy(*a, **k):
        out = orig(*a, **k)
        penalties.append(float(trainer.last_penalty))
        return out

    trainer.compute_loss = spy
    trainer.train()
    logged = [e["topo_penalty"] for e in trainer.state.log_history if "topo_penalty" in e]
    assert len(logged) == 3  # one per logging step
    np.testing.assert_allclose(logged, penalties, rtol=1e-6)
    assert all(0 < v < 2.0 for v in logged)  # λ · mean(1 − d) with d in (0, 1)
    # the logged loss includes the penalty (the Trainer logs what it backpropagated)
    losses = [e["loss"] for e in trainer.state.log_history if "topo_penalty" in e]
    assert all(loss > p for loss, p in zip(losses, logged))


def test_eval_loss_is_the_task_loss(tmp_path):
    rows = _examples()
    trainer = TopologicalTrainer(
        model=_gpt2(), args=_args(tmp_path, max_steps=1, save_strategy="no"), train_dataset=rows,
        eval_dataset=rows, regularizer=tn.TopologicalRedundancy(), weight=1.0, layers=LAYERS,
    )  # fmt: skip
    metrics = trainer.evaluate()
    with torch.no_grad():
        ref = trainer.model.eval()(**_batch(rows)).loss
    np.testing.assert_allclose(metrics["eval_loss"], float(ref), rtol=1e-5)


def _resumable(tmp_path, max_steps, callback):
    rows = _examples()
    return TopologicalTrainer(
        model=_gpt2(), args=_args(tmp_path, max_steps=max_steps, save_strategy="steps",
                                  save_steps=2, eval_strategy="steps", eval_steps=1),
        train_dataset=rows, eval_dataset=rows[:2], layers=LAYERS, weight=1.0,
        regularizer=tn.TopologicalRedundancy(reduction="mean", refresh_every=3),
        callbacks=[callback],
    )  # fmt: skip


def test_resumed_run_continues_the_tree_cache_and_the_barcode_history(tmp_path):
    probe = _batch(_examples(seed=5))
    probe.pop("labels")
    # uninterrupted: 4 steps, a checkpoint at 2 and 4, an evaluation after every step
    full_cb = BarcodeCallback(probe, LAYERS)
    full = _resumable(tmp_path / "full", 4, full_cb)
    full.train()
    assert full_cb.history.steps == [1, 2, 3, 4]
    ckpt = tmp_path / "full" / "checkpoint-2"
    assert (ckpt / REGULARIZER_FILE).is_file()

    # interrupted after step 2 (its own folder), then resumed by a fresh trainer from it
    first_cb = BarcodeCallback(probe, LAYERS)
    first = _resumable(tmp_path / "run", 2, first_cb)
    first.train()
    saved = torch.load(tmp_path / "run" / "checkpoint-2" / REGULARIZER_FILE, weights_only=True)
    state = saved["_extra_state"]
    assert state["age"] == 2 and state["edges"].shape == (31, 2)  # 2 of refresh_every=3 used
    resumed_cb = BarcodeCallback(probe, LAYERS)
    resumed = _resumable(tmp_path / "run", 4, resumed_cb)
    resumed.train(resume_from_checkpoint=True)

    # the cache continued: step 3 reused the tree of step 1 (age 3) and step 4 searched anew
    # (age 1); a fresh cache would have searched at step 3 and reused it at step 4 (age 2)
    torch.testing.assert_close(resumed.regularizer._edges, full.regularizer._edges)
    assert resumed.regularizer._age == full.regularizer._age == 1
    assert resumed_cb.history.steps == [1, 2, 3, 4]
    for layer in LAYERS:
        for a, b in zip(resumed_cb.history.barcodes[layer], full_cb.history.barcodes[layer]):
            np.testing.assert_allclose(a.deaths, b.deaths, rtol=1e-4, atol=1e-6)
    assert resumed_cb.dead_neurons == full_cb.dead_neurons
    # the barcode scalars are in the evaluation logs
    evals = [e for e in resumed.state.log_history if f"barcodes/{LAYERS[0]}/death_median" in e]
    assert [e["step"] for e in evals] == [1, 2, 3, 4]
    for p_full, p_res in zip(full.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(p_full, p_res, rtol=1e-4, atol=1e-6)


def test_resume_restores_the_cache_age(tmp_path):
    """The regulariser's age after resuming equals the checkpoint's (not a fresh cache)."""
    probe = _batch(_examples(seed=5))
    probe.pop("labels")
    first = _resumable(tmp_path, 2, BarcodeCallback(probe, LAYERS))
    first.train()
    cached = first.regularizer._edges.clone()
    fresh = _resumable(tmp_path, 3, BarcodeCallback(probe, LAYERS))
    calls = []
    fresh.add_callback(_AgeSpy(fresh.regularizer, calls))
    fresh.train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))
    assert calls == [(2, True)]  # on resuming: age 2 and the checkpoint's cached edges
    assert fresh.regularizer._age == 3  # step 3 used the cached tree (no new search)
    torch.testing.assert_close(fresh.regularizer._edges, cached)


class _AgeSpy(transformers.TrainerCallback):
    def __init__(self, reg, calls):
        self.reg, self.calls = reg, calls

    def on_train_begin(self, args, state, control, **kw):
        self.calls.append((self.reg._age, self.reg._edges is not None))


def test_missing_mask_entry_is_an_error(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "attention_mask"} for r in _examples()]
    trainer = TopologicalTrainer(
        model=_gpt2(), args=_args(tmp_path, max_steps=1, save_strategy="no"), train_dataset=rows,
        regularizer=tn.TopologicalRedundancy(), layers=LAYERS,
    )  # fmt: skip
    with pytest.raises(ValueError, match="attention_mask"):
        trainer.train()


def test_bad_arguments_are_named(tmp_path):
    args = _args(tmp_path, max_steps=1)
    with pytest.raises(TypeError, match="activation loss"):
        TopologicalTrainer(model=_gpt2(), args=args, regularizer=tn.L2Penalty())
    with pytest.raises(ValueError, match="weight=-1"):
        TopologicalTrainer(model=_gpt2(), args=args, regularizer=tn.TopologicalRedundancy(),
                           weight=-1.0)  # fmt: skip


def test_barcode_callback_under_a_plain_trainer_resumes_its_history(tmp_path):
    probe = _batch(_examples(seed=5))
    probe.pop("labels")

    def run(max_steps, resume):
        cb = BarcodeCallback(probe, LAYERS)
        trainer = transformers.Trainer(
            model=_gpt2(), args=_args(tmp_path, max_steps=max_steps, save_strategy="steps",
                                      save_steps=2, eval_strategy="steps", eval_steps=1),
            train_dataset=_examples(), eval_dataset=_examples()[:2], callbacks=[cb],
        )  # fmt: skip
        trainer.train(resume_from_checkpoint=resume)
        return cb

    first = run(2, None)
    assert first.history.steps == [1, 2]
    resumed = run(3, True)  # read back at on_train_begin from output_dir/checkpoint-2
    assert resumed.history.steps == [1, 2, 3]
    for a, b in zip(resumed.history.barcodes[LAYERS[0]][:2], first.history.barcodes[LAYERS[0]]):
        np.testing.assert_array_equal(a.deaths, b.deaths)
