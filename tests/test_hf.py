"""The HF Trainer integration (maskviz.hf) under the real `transformers.Trainer`.

The main claim: every micro-batch is masked inside the training loop at `schedule(progress(step, max_steps))` of the
optimizer step that trains on it, with DataLoader workers and gradient accumulation; in evaluation at the constant
eval rate; after a resume from a checkpoint; and in a user's own Trainer subclass through `masking_trainer`. Every
logged row satisfies `mask_rate == schedule(progress)`. nbs/02b_hf.ipynb shows by contrast that masking in the
collator lags.
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

from maskviz.hf import MaskingCollator, MaskingTrainer, mask_batch, masking_trainer
from maskviz.maskers import MaskedBatch, make_masker
from maskviz.schedules import linear, progress

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


def tiny_trainer(tokenizer, blocks, masker, out_dir, workers=2, trainer_class=MaskingTrainer, seed=1, **kwargs):
    settings = dict(max_steps=STEPS, per_device_train_batch_size=4, gradient_accumulation_steps=2, per_device_eval_batch_size=8,
                    dataloader_num_workers=workers, use_cpu=True, report_to=[], learning_rate=1e-3,
                    logging_steps=2, save_strategy="no", disable_tqdm=True, seed=3)
    args = TrainingArguments(str(out_dir), **{**settings, **kwargs})
    trainer = trainer_class(model=tiny_bert(tokenizer), args=args, train_dataset=blocks, eval_dataset=blocks.select(range(16)),
                            processing_class=tokenizer, masker=masker, schedule=SCHEDULE, mask_seed=seed)
    trainer.remove_callback(PrinterCallback)
    return trainer


class Recorder:
    "Wraps a masker; records, for each call, whether it trains or evaluates, the global_step, the rate and the mask."
    def __init__(self, masker):
        self.masker, self.trainer, self.calls, self.evaluating = masker, None, [], False
        self.needs = getattr(masker, "needs", ())

    def watch(self, trainer):
        "Record calls of `trainer`, telling those made while it evaluates."
        self.trainer, evaluate = trainer, trainer.evaluate
        def evaluating(*args, **kwargs):
            self.evaluating = True
            try: return evaluate(*args, **kwargs)
            finally: self.evaluating = False
        trainer.evaluate = evaluating

    def __call__(self, batch, rate, generator):
        out = self.masker(batch, rate, generator)
        self.calls.append(dict(training=not self.evaluating, step=self.trainer.state.global_step, rate=rate,
                               masked=out.mask.sum().item(), maskable=out.selectable.sum().item(), mask=out.mask.cpu()))
        return out


def run(tokenizer, blocks, out_dir, seed=1, resume=None, trainer_class=MaskingTrainer, **kwargs):
    "Train the tiny BERT under linear(0.5, 0.1) with exact random masking; the Recorder and the Trainer."
    recorder = Recorder(make_masker("random", tokenizer, exact=True))
    trainer = tiny_trainer(tokenizer, blocks, recorder, out_dir, seed=seed, trainer_class=trainer_class, **kwargs)
    recorder.watch(trainer)
    trainer.train(resume_from_checkpoint=resume)
    return recorder, trainer


# ---- the collator


def test_collator_stacks_unmasked_blocks(tokenizer):
    batch = MaskingCollator(tokenizer, columns=("word_ids", "pos_ids"))(
        [{"input_ids": [2, 50, 51, 3], "word_ids": [-1, 0, 0, -1], "pos_ids": [-1, 7, 7, -1], "text": "ab"},
         {"input_ids": [2, 60, 3], "word_ids": [-1, 0, -1], "pos_ids": [-1, 3, -1], "text": "c"}])
    assert sorted(batch) == ["attention_mask", "input_ids", "pos_ids", "special_tokens_mask", "word_ids"]  # no labels yet
    assert batch["input_ids"].tolist() == [[2, 50, 51, 3], [2, 60, 3, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["special_tokens_mask"].tolist() == [[1, 0, 0, 1], [1, 0, 1, 1]]
    assert batch["pos_ids"].tolist() == [[-1, 7, 7, -1], [-1, 3, -1, -1]]
    given = MaskingCollator(tokenizer)([{"input_ids": [2, 50, 3], "attention_mask": [1, 1, 0], "special_tokens_mask": [0, 0, 1],
                                         "token_type_ids": [0, 0, 0]}])
    assert given["special_tokens_mask"].tolist() == [[0, 0, 1]]  # the example's own masks win
    assert given["attention_mask"].tolist() == [[1, 1, 0]] and given["token_type_ids"].tolist() == [[0, 0, 0]]


def test_collator_errors(tokenizer):
    with pytest.raises(ValueError, match=r"reads 'word_ids'.*remove_unused_columns=False"):
        MaskingCollator(tokenizer, columns=("word_ids",))([{"input_ids": [2, 50, 3]}])
    with pytest.raises(ValueError, match="each example needs 'input_ids'"):
        MaskingCollator(tokenizer)([{"text": "a"}])
    with pytest.raises(ValueError, match="unknown annotation column 'lemmas'"):
        MaskingCollator(tokenizer, columns=("lemmas",))


# ---- mask_batch, the one masking path


def test_mask_batch_is_fixed_by_its_seed(tokenizer, blocks):
    masker = make_masker("random", tokenizer, exact=True)
    batch = MaskingCollator(tokenizer)([blocks[i] for i in range(4)])
    before = {k: v.clone() for k, v in batch.items()}
    inputs, masked = mask_batch(masker, batch, 0.3, seed=5)
    assert all(torch.equal(batch[k], before[k]) for k in batch)  # the batch is untouched
    assert sorted(inputs) == ["attention_mask", "input_ids", "labels"]  # special_tokens_mask does not reach the model
    assert masked.mask.sum(1).tolist() == [round(0.3 * 30)] * 4
    assert torch.equal(inputs["labels"] != -100, masked.mask)
    assert torch.equal(mask_batch(masker, batch, 0.3, seed=5)[1].mask, masked.mask)
    assert not torch.equal(mask_batch(masker, batch, 0.3, seed=6)[1].mask, masked.mask)
    with pytest.raises(ValueError, match="already has labels"): mask_batch(masker, {**batch, "labels": batch["input_ids"]}, 0.3, 0)


def test_text_to_text_targets_become_labels():
    "Formats that return decoder targets (and a new attention mask) hand those to the model as labels."
    def to_text(batch, rate, generator):
        ids = batch["input_ids"]
        return MaskedBatch(ids[:, :2], torch.full_like(ids, -100), torch.zeros_like(ids, dtype=torch.bool),
                           targets=ids[:, 1:3], attention_mask=torch.ones_like(ids[:, :2]))
    ids = torch.tensor([[2, 5, 6, 3]])
    inputs, _ = mask_batch(to_text, {"input_ids": ids, "attention_mask": torch.ones_like(ids),
                                     "special_tokens_mask": torch.tensor([[1, 0, 0, 1]])}, 0.5, seed=0)
    assert inputs["labels"].tolist() == [[5, 6]] and inputs["input_ids"].tolist() == [[2, 5]]
    assert inputs["attention_mask"].tolist() == [[1, 1]]


def test_trainer_errors(tokenizer, blocks, tmp_path):
    masker = make_masker("random", tokenizer)
    make = lambda **kw: tiny_trainer(tokenizer, blocks, kw.pop("masker", masker), tmp_path, workers=0, **kw)
    with pytest.raises(ValueError, match="masker must be a policy"): make(masker="random")
    with pytest.raises(ValueError, match=r"eval_rate must be a masking rate in \[0, 1\], got 1.5"):
        MaskingTrainer(model=tiny_bert(tokenizer), processing_class=tokenizer, masker=masker, eval_rate=1.5)
    with pytest.raises(ValueError, match="mask_seed must be a non-negative integer"): make(seed=-1)
    with pytest.raises(ValueError, match="unknown schedule family"):
        MaskingTrainer(model=tiny_bert(tokenizer), processing_class=tokenizer, masker=masker, schedule="linaer(0.3, 0.15)")
    with pytest.raises(ValueError, match="pass processing_class=tokenizer"): MaskingTrainer(model=tiny_bert(tokenizer), masker=masker)
    with pytest.raises(ValueError, match="must be a transformers.Trainer subclass"): masking_trainer(object)


def test_loss_weighted_by_share_of_the_steps_tokens(tokenizer, blocks, tmp_path):
    "Given the step's count of predicted tokens, a micro-batch's mean loss is weighted by its share of them."
    trainer = tiny_trainer(tokenizer, blocks, make_masker("random", tokenizer), tmp_path, workers=0)
    trainer.model.eval()  # no dropout: the two losses see the same network
    inputs, _ = mask_batch(trainer.masker, MaskingCollator(tokenizer)([blocks[i] for i in range(4)]), 0.3, seed=1)
    n = (inputs["labels"] != -100).sum()
    mean = trainer.compute_loss(trainer.model, inputs)
    weighted = trainer.compute_loss(trainer.model, inputs, num_items_in_batch=3 * n)  # this micro-batch holds 1/3
    torch.testing.assert_close(weighted, mean / 3)


# ---- under the real Trainer loop


def _check_rates_and_logs(recorder, trainer, evals=0):
    train = [c for c in recorder.calls if c["training"]]
    assert [c["step"] for c in train] == [s for s in range(STEPS) for _ in range(2)]
    for c in train:
        assert c["rate"] == SCHEDULE(progress(c["step"], STEPS))
        assert abs(c["masked"] / c["maskable"] - c["rate"]) <= 0.5 / 30  # exact=True: round(rate * 30) per row
    logs = trainer.state.log_history
    train_logs = [h for h in logs if "loss" in h]
    assert [h["step"] for h in train_logs] == list(range(2, STEPS + 1, 2))
    for h in train_logs:  # the row of step s describes the last step it covers, masked at progress (s-1)/N
        assert h["progress"] == progress(h["step"] - 1, STEPS)
        assert abs(h["mask_rate"] - SCHEDULE(h["progress"])) <= 1e-9
        rates = [SCHEDULE(progress(s, STEPS)) for s in (h["step"] - 2, h["step"] - 1)]
        assert abs(h["masked_fraction"] - sum(rates) / 2) < 0.02
    assert [h["eval_mask_rate"] for h in logs if "eval_loss" in h] == [0.15] * evals
    return train_logs


def test_trainer_masks_at_the_steps_rate_with_workers(tokenizer, blocks, tmp_path):
    "Two DataLoader workers, two micro-batches per step: every micro-batch gets its optimizer step's rate."
    recorder, trainer = run(tokenizer, blocks, tmp_path, eval_strategy="steps", eval_steps=6)
    train_logs = _check_rates_and_logs(recorder, trainer, evals=2)
    evals = [c for c in recorder.calls if not c["training"]]
    assert len(evals) == 4 and {c["rate"] for c in evals} == {0.15}
    assert all(abs(c["masked"] / c["maskable"] - 0.15) <= 0.5 / 30 for c in evals)
    assert torch.equal(evals[0]["mask"], evals[2]["mask"])  # every evaluation masks the same way
    # A uniform guess scores ln(1000) = 6.9; unweighted, gradient accumulation would log twice that.
    assert abs(train_logs[0]["loss"] - np.log(len(tokenizer))) < 0.3


def test_stock_collator_loss_is_inflated_by_gradient_accumulation(tokenizer, blocks, tmp_path):
    "Why the trainer weighs the loss: BertForMaskedLM ignores num_items_in_batch (transformers issue #47688)."
    from transformers import DataCollatorForLanguageModeling
    args = TrainingArguments(str(tmp_path), max_steps=2, per_device_train_batch_size=4, gradient_accumulation_steps=2,
                             use_cpu=True, report_to=[], logging_steps=1, save_strategy="no", disable_tqdm=True, seed=3)
    trainer = Trainer(model=tiny_bert(tokenizer), args=args, train_dataset=blocks.remove_columns("word_ids"),
                      data_collator=DataCollatorForLanguageModeling(tokenizer, seed=0))
    trainer.remove_callback(PrinterCallback)
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


def test_a_users_trainer_masks_through_the_same_path(tokenizer, blocks, tmp_path):
    "masking_trainer mixes the masking into a Trainer subclass of one's own, which keeps its own behaviour."
    class CountingTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            self.seen = getattr(self, "seen", 0) + 1
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    cls = masking_trainer(CountingTrainer)
    assert issubclass(cls, CountingTrainer) and cls.__name__ == "MaskingCountingTrainer"
    recorder, trainer = run(tokenizer, blocks, tmp_path, workers=0, trainer_class=cls)
    assert trainer.seen == 2 * STEPS  # its compute_loss ran on every micro-batch
    _check_rates_and_logs(recorder, trainer)


def test_annotations_reach_the_masker_not_the_model(tokenizer, blocks, tmp_path):
    seen = []
    def needs_words(batch, rate, generator):
        seen.append(batch["word_ids"][0, :4].tolist())
        return make_masker("random", tokenizer)(batch, rate, generator)
    needs_words.needs = ("word_ids",)

    trainer = tiny_trainer(tokenizer, blocks, needs_words, tmp_path, workers=0, max_steps=2)
    assert trainer.data_collator.columns == ("word_ids",)
    reached = []
    trainer.model.register_forward_pre_hook(lambda m, a, kw: reached.append(sorted(kw)), with_kwargs=True)
    trainer.train()  # remove_unused_columns=True (the default): MaskingTrainer keeps the columns its policy reads
    assert seen[0] == [-1, 0, 0, 1]
    assert reached[0] == ["attention_mask", "input_ids", "labels"]

    # a plain Trainer with the collator drops the column first, and the collator says how to keep it
    args = TrainingArguments(str(tmp_path), max_steps=2, per_device_train_batch_size=4, use_cpu=True, report_to=[],
                             save_strategy="no", disable_tqdm=True)
    plain = Trainer(model=tiny_bert(tokenizer), args=args, train_dataset=blocks, data_collator=MaskingCollator(tokenizer, ("word_ids",)))
    with pytest.raises(ValueError, match="remove_unused_columns=False"): plain.train()


@pytest.mark.gpu
def test_masks_on_the_models_device(tokenizer, blocks):
    masker = make_masker("random", tokenizer, exact=True)
    batch = {k: v.cuda() for k, v in MaskingCollator(tokenizer)([blocks[i] for i in range(4)]).items()}
    inputs, masked = mask_batch(masker, batch, 0.5, seed=1)
    loss = tiny_bert(tokenizer).cuda()(**inputs).loss
    assert loss.device.type == "cuda" and masked.mask.device.type == "cuda"
    assert masked.mask.sum(1).tolist() == [15] * 4
