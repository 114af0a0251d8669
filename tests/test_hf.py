"""The HF Trainer integration (maskviz.hf) under the real `transformers.Trainer`.

The main claim: every batch is masked at `schedule.at(global_step, max_steps)` of the optimizer step that trains
on it, with DataLoader workers and gradient accumulation, in evaluation at the constant eval rate, and after a
resume from a checkpoint. The notebook nbs/02b_hf.ipynb shows by contrast that masking in the collator lags.
"""
import os, random
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the DataLoader workers fork after the tokenizer has run

import numpy as np
import pytest
import torch
from datasets import Dataset
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast, PrinterCallback, Trainer, TrainingArguments
from transformers.utils import logging as hf_logging

from maskviz.hf import PENDING_LABEL, MaskingCollator, ScheduledMasking, scheduled_masking
from maskviz.maskers import MaskedBatch, make_masker
from maskviz.schedules import linear

hf_logging.set_verbosity_error()
L, STEPS, SCHEDULE = 32, 12, linear(0.5, 0.1)  # steep, so that a step of lag would show


def _lines() -> list[str]:
    "400 lines of WikiText-2 from the local data root, or made-up sentences where there is none."
    root = os.environ.get("MASKVIZ_DATA")
    path = Path(root) / "wikitext-2-raw" / "wiki.valid.raw" if root else None
    if path is not None and path.is_file():
        return [l.strip() for l in path.read_text(encoding="utf-8").splitlines() if len(l.strip()) > 40][:400]
    rng = random.Random(0)
    words = "the a lobster sea claw grows eats lives in on near large small blue red old young river town king army".split()
    return [" ".join(rng.choice(words) for _ in range(20)) for _ in range(400)]


@pytest.fixture(scope="module")
def tokenizer():
    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.train_from_iterator(_lines(), trainers.WordPieceTrainer(vocab_size=1000, show_progress=False,
                                  special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    return PreTrainedTokenizerFast(tokenizer_object=wordpiece, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


@pytest.fixture(scope="module")
def blocks(tokenizer):
    "48 blocks of 32 tokens: [CLS] + 30 tokens + [SEP], with a made-up `word_ids` column."
    ids = [i for l in _lines() for i in tokenizer(l, add_special_tokens=False)["input_ids"]]
    rows = [[tokenizer.cls_token_id, *ids[i:i + L - 2], tokenizer.sep_token_id] for i in range(0, 48 * (L - 2), L - 2)]
    return Dataset.from_dict({"input_ids": rows, "word_ids": [[-1, *(np.arange(L - 2) // 2).tolist(), -1] for _ in rows]})


def tiny_bert(tokenizer, dropout=0.1):
    torch.manual_seed(0)
    return BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                      intermediate_size=64, max_position_embeddings=L,
                                      hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout))


def tiny_trainer(tokenizer, blocks, collator, callbacks, out_dir, workers=2, **kwargs):
    settings = dict(max_steps=STEPS, per_device_train_batch_size=4, gradient_accumulation_steps=2, per_device_eval_batch_size=8,
                    dataloader_num_workers=workers, use_cpu=True, report_to=[], remove_unused_columns=False, learning_rate=1e-3,
                    logging_steps=2, save_strategy="no", disable_tqdm=True, seed=3)
    args = TrainingArguments(str(out_dir), **{**settings, **kwargs})
    trainer = Trainer(model=tiny_bert(tokenizer), args=args, train_dataset=blocks, eval_dataset=blocks.select(range(16)),
                      data_collator=collator, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)
    return trainer


class Recorder:
    "Wraps a masker; records, for each call, the Trainer's mode and global_step, the rate and the mask."
    def __init__(self, masker):
        self.masker, self.trainer, self.calls = masker, None, []
        self.needs = getattr(masker, "needs", ())

    def __call__(self, batch, rate, generator):
        out = self.masker(batch, rate, generator)
        self.calls.append(dict(training=self.trainer.model.training, step=self.trainer.state.global_step, rate=rate,
                               masked=out.mask.sum().item(), maskable=out.selectable.sum().item(), mask=out.mask.cpu()))
        return out


def run(tokenizer, blocks, out_dir, seed=1, resume=None, **kwargs):
    "Train the tiny BERT under linear(0.5, 0.1) with exact random masking; the Recorder and the Trainer."
    recorder = Recorder(make_masker("random", tokenizer, exact=True))
    trainer = tiny_trainer(tokenizer, blocks, MaskingCollator(tokenizer), [ScheduledMasking(recorder, SCHEDULE, seed=seed)], out_dir, **kwargs)
    recorder.trainer = trainer
    trainer.train(resume_from_checkpoint=resume)
    return recorder, trainer


# ---- the collator


def test_collator_stacks_unmasked_blocks(tokenizer):
    batch = MaskingCollator(tokenizer, columns=("word_ids", "pos_ids"))(
        [{"input_ids": [2, 50, 51, 3], "word_ids": [-1, 0, 0, -1], "pos_ids": [-1, 7, 7, -1], "text": "ab"},
         {"input_ids": [2, 60, 3], "word_ids": [-1, 0, -1], "pos_ids": [-1, 3, -1], "text": "c"}])
    assert sorted(batch) == ["attention_mask", "input_ids", "labels", "pos_ids", "special_tokens_mask", "word_ids"]
    assert batch["input_ids"].tolist() == [[2, 50, 51, 3], [2, 60, 3, 0]]
    assert batch["pos_ids"].tolist() == [[-1, 7, 7, -1], [-1, 3, -1, -1]]
    assert batch["labels"].tolist() == [[-100, PENDING_LABEL, PENDING_LABEL, -100], [-100, PENDING_LABEL, -100, -100]]
    given = MaskingCollator(tokenizer)([{"input_ids": [2, 50, 3], "attention_mask": [1, 1, 0], "special_tokens_mask": [0, 0, 1],
                                         "token_type_ids": [0, 0, 0]}])
    assert given["labels"].tolist() == [[PENDING_LABEL, PENDING_LABEL, -100]]  # the example's own masks win
    assert given["token_type_ids"].tolist() == [[0, 0, 0]]


def test_collator_errors(tokenizer):
    with pytest.raises(ValueError, match=r"reads 'word_ids'.*remove_unused_columns=False"):
        MaskingCollator(tokenizer, columns=("word_ids",))([{"input_ids": [2, 50, 3]}])
    with pytest.raises(ValueError, match="each example needs 'input_ids'"):
        MaskingCollator(tokenizer)([{"text": "a"}])
    with pytest.raises(ValueError, match="unknown annotation column 'lemmas'"):
        MaskingCollator(tokenizer, columns=("lemmas",))


def test_callback_errors(tokenizer):
    masker = make_masker("random", tokenizer)
    with pytest.raises(ValueError, match="masker must be a policy"): ScheduledMasking("random", SCHEDULE)
    with pytest.raises(ValueError, match=r"eval_rate must be a masking rate in \[0, 1\], got 1.5"): ScheduledMasking(masker, SCHEDULE, eval_rate=1.5)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"): ScheduledMasking(masker, SCHEDULE, seed=-1)
    with pytest.raises(ValueError, match="unknown schedule family"): ScheduledMasking(masker, "linaer(0.3, 0.15)")
    with pytest.raises(ValueError, match="no training step has begun"): ScheduledMasking(masker, SCHEDULE).rate


# ---- the hook, on its own


def test_hook_masks_pending_batches_only(tokenizer, blocks):
    model = tiny_bert(tokenizer, dropout=0.0)
    callback = ScheduledMasking(make_masker("random", tokenizer, exact=True), SCHEDULE, seed=1)
    callback.attach(model)
    callback.attach(model)  # once is enough
    assert len(model._forward_pre_hooks) == 1
    callback.step, callback.total_steps = 6, STEPS
    batch = MaskingCollator(tokenizer)([blocks[i] for i in range(4)])
    before = {k: v.clone() for k, v in batch.items()}
    model(**batch)
    assert all(torch.equal(batch[k], before[k]) for k in batch)  # inputs untouched
    assert callback.last.mask.sum(1).tolist() == [round(0.3 * 30)] * 4
    callback._micro = 0
    model(**batch)
    first = callback.last.mask
    callback._micro = 0
    model(**batch)
    assert torch.equal(callback.last.mask, first)  # (seed, process, step, micro-batch) fixes the mask
    model(**batch)
    assert not torch.equal(callback.last.mask, first)  # the next micro-batch masks differently
    callback._micro, callback._rank = 0, 1
    model(**batch)
    assert not torch.equal(callback.last.mask, first)  # and so does another process
    assert model(input_ids=batch["input_ids"]).loss is None  # not a MaskingCollator batch: passed through
    callback.detach()
    with pytest.raises(IndexError, match="Target -2 is out of bounds"): model(**batch)  # never trains on unmasked labels


def test_loss_weighted_by_share_of_maskable_tokens(tokenizer, blocks):
    "Given the Trainer's count of the step's tokens, a micro-batch's mean loss is weighted by its share of them."
    model = tiny_bert(tokenizer, dropout=0.0)
    callback = ScheduledMasking(make_masker("random", tokenizer), SCHEDULE, seed=1)
    callback.attach(model)
    callback.step, callback.total_steps = 0, STEPS
    batch = MaskingCollator(tokenizer)([blocks[i] for i in range(4)])
    mean = model(**batch).loss
    callback._micro = 0
    weighted = model(**batch, num_items_in_batch=torch.tensor(3 * 120)).loss  # this micro-batch holds 120 of 360
    torch.testing.assert_close(weighted, mean / 3)


def test_text_to_text_targets_become_labels():
    "Formats that return decoder targets (and a new attention mask) hand those to the model."
    class Probe(torch.nn.Module):
        def forward(self, input_ids, attention_mask, labels):
            self.seen = dict(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
            return (labels.float().sum() * 0 + 1.0,)

    def to_text(batch, rate, generator):
        ids = batch["input_ids"]
        return MaskedBatch(ids[:, :2], torch.full_like(ids, -100), torch.zeros_like(ids, dtype=torch.bool),
                           targets=ids[:, 1:3], attention_mask=torch.ones_like(ids[:, :2]))

    probe, callback = Probe(), ScheduledMasking(to_text, SCHEDULE)
    callback.attach(probe)
    probe.eval()
    ids = torch.tensor([[2, 5, 6, 3]])
    out = probe(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([[-100, -2, -2, -100]]),
                special_tokens_mask=torch.tensor([[1, 0, 0, 1]]), num_items_in_batch=torch.tensor(4))
    assert probe.seen["labels"].tolist() == [[5, 6]] and probe.seen["input_ids"].tolist() == [[2, 5]]
    assert probe.seen["attention_mask"].tolist() == [[1, 1]]
    assert out[0].item() == 0.5  # a tuple output's loss is weighted too: 2 of the 4 maskable tokens


# ---- under the real Trainer


def test_trainer_masks_at_the_steps_rate_with_workers(tokenizer, blocks, tmp_path):
    "Two DataLoader workers, two micro-batches per step: every forward gets its optimizer step's rate."
    recorder, trainer = run(tokenizer, blocks, tmp_path, eval_strategy="steps", eval_steps=6)
    train = [c for c in recorder.calls if c["training"]]
    assert [c["step"] for c in train] == [s for s in range(STEPS) for _ in range(2)]
    for c in train:
        assert c["rate"] == SCHEDULE.at(c["step"], STEPS)
        assert abs(c["masked"] / c["maskable"] - c["rate"]) <= 0.5 / 30  # exact=True: round(rate * 30) per row
    evals = [c for c in recorder.calls if not c["training"]]
    assert len(evals) == 4 and {c["rate"] for c in evals} == {0.15}
    assert all(abs(c["masked"] / c["maskable"] - 0.15) <= 0.5 / 30 for c in evals)
    assert torch.equal(evals[0]["mask"], evals[2]["mask"])  # every evaluation masks the same way

    logs = trainer.state.log_history
    train_logs = [h for h in logs if "loss" in h]
    assert [h["mask_rate"] for h in train_logs] == [SCHEDULE.at(h["step"] - 1, STEPS) for h in train_logs]
    assert all(abs(h["masked_fraction"] - (SCHEDULE.at(h["step"] - 2, STEPS) + SCHEDULE.at(h["step"] - 1, STEPS)) / 2) < 0.02 for h in train_logs)
    assert [h["eval_mask_rate"] for h in logs if "eval_loss" in h] == [0.15, 0.15]
    # A uniform guess scores ln(1000) = 6.9; unweighted, gradient accumulation would log twice that.
    assert abs(train_logs[0]["loss"] - np.log(len(tokenizer))) < 0.3


def test_stock_collator_loss_is_inflated_by_gradient_accumulation(tokenizer, blocks, tmp_path):
    "Why the callback weighs the loss: BertForMaskedLM ignores num_items_in_batch (transformers issue #47688)."
    from transformers import DataCollatorForLanguageModeling
    trainer = tiny_trainer(tokenizer, blocks.remove_columns("word_ids"), DataCollatorForLanguageModeling(tokenizer, seed=0), [],
                           tmp_path, workers=0, max_steps=2, logging_steps=1)
    trainer.train()
    assert trainer.state.log_history[0]["loss"] > 1.8 * np.log(len(tokenizer))


def test_resume_keeps_rates_and_masks(tokenizer, blocks, tmp_path):
    "A run resumed from its step-9 checkpoint, mid-epoch, masks steps 9-11 exactly as the uninterrupted run did."
    whole, _ = run(tokenizer, blocks, tmp_path / "a", workers=0, save_strategy="steps", save_steps=9)
    resumed, _ = run(tokenizer, blocks, tmp_path / "b", workers=0, resume=str(tmp_path / "a" / "checkpoint-9"))
    later = [c for c in whole.calls if c["training"] and c["step"] >= 9]
    assert [(c["step"], c["rate"]) for c in resumed.calls] == [(c["step"], c["rate"]) for c in later]
    assert [c["rate"] for c in later] == [SCHEDULE.at(s, STEPS) for s in (9, 9, 10, 10, 11, 11)]
    assert all(torch.equal(a["mask"], b["mask"]) for a, b in zip(resumed.calls, later))


def test_annotations_reach_the_masker_not_the_model(tokenizer, blocks, tmp_path):
    seen = []
    def needs_words(batch, rate, generator):
        seen.append(batch["word_ids"][0, :4].tolist())
        return make_masker("random", tokenizer)(batch, rate, generator)
    needs_words.needs = ("word_ids",)

    collator, callback = scheduled_masking(needs_words, tokenizer, SCHEDULE)
    assert collator.columns == ("word_ids",)
    trainer = tiny_trainer(tokenizer, blocks, collator, [callback], tmp_path, workers=0, max_steps=2)
    reached = []
    trainer.model.register_forward_pre_hook(lambda m, a, kw: reached.append(sorted(kw)), with_kwargs=True)  # runs after the mask
    trainer.train()
    assert seen[0] == [-1, 0, 0, 1]
    assert reached[0] == ["attention_mask", "input_ids", "labels"]

    # workers=0: a worker that raised is only joined when its iterator is collected, which takes seconds
    dropping = tiny_trainer(tokenizer, blocks, collator, [callback], tmp_path, workers=0, max_steps=2, remove_unused_columns=True)
    with pytest.raises(ValueError, match="remove_unused_columns=False"): dropping.train()


def test_label_smoothing_is_refused(tokenizer, blocks, tmp_path):
    collator, callback = scheduled_masking("random", tokenizer, SCHEDULE)
    trainer = tiny_trainer(tokenizer, blocks, collator, [callback], tmp_path, workers=0, label_smoothing_factor=0.1)
    with pytest.raises(ValueError, match="label_smoothing_factor=0.1"): trainer.train()


@pytest.mark.gpu
def test_masks_on_the_models_device(tokenizer, blocks):
    model = tiny_bert(tokenizer).cuda()
    callback = ScheduledMasking(make_masker("random", tokenizer, exact=True), SCHEDULE, seed=1)
    callback.attach(model)
    callback.step, callback.total_steps = 0, STEPS
    batch = {k: v.cuda() for k, v in MaskingCollator(tokenizer)([blocks[i] for i in range(4)]).items()}
    loss = model(**batch).loss
    assert loss.device.type == "cuda" and callback.last.mask.device.type == "cuda"
    assert callback.last.mask.sum(1).tolist() == [15] * 4
