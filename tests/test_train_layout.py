"""finscribe train-layout: the tiny detector learns (loss falls) on synthetic pages through the real
Trainer, resumes, starts from another detector's folder with a new class head, and reads COCO and
Label Studio boxes, naming every unusable one."""

from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image
from transformers import RTDetrForObjectDetection

from finscribe.data.page_boxes import read_page_boxes
from finscribe.data.schema import REGIONS
from finscribe.detection import load_detector, tiny_detector_config
from finscribe.synthetic.export import generate_dataset
from finscribe.training.train_layout import initial_model, train_layout
from finscribe.training.train_layout_config import LayoutTrainConfig


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """Three synthetic pages (two train, one val by hand) with their manifest."""
    manifest = generate_dataset(3, tmp_path_factory.mktemp("pages") / "synth", seed=7, workers=1, degrade=0, held_out_layouts=())
    data = json.loads(manifest.read_text())
    for i, sample in enumerate(data["samples"]):
        sample["split"] = "val" if i == 2 else "train"
    manifest.write_text(json.dumps(data))
    return manifest


def small(pages, out, **kw) -> LayoutTrainConfig:
    options = dict(data=(pages,), output_dir=out, image_height=256, image_width=192, batch_size=2, learning_rate=1e-3,
                   warmup_steps=0, lr_scheduler="constant", logging_steps=1, augment=False, eval_steps=100, eval_limit=1)
    return LayoutTrainConfig(**{**options, **kw})


def test_training_loss_is_finite_and_falls_on_two_pages(pages, tmp_path):
    out = train_layout(small(pages, tmp_path / "run", max_steps=12, save_steps=100))
    losses = [row["loss"] for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in row]
    assert len(losses) == 12 and all(math.isfinite(v) for v in losses)
    assert sum(losses[-3:]) / 3 < 0.85 * losses[0], losses
    model, processor = load_detector(out)
    assert [model.config.id2label[i] for i in range(5)] == list(REGIONS)
    assert processor.size == {"height": 256, "width": 192}
    for name in ("loss_curve.png", "README.md", "train_layout_config.json", "val_metrics.json"):
        assert (out / name).is_file(), name
    assert "page_hit_rate" in (out / "README.md").read_text() or "eval_page_hit_rate" in (out / "val_metrics.json").read_text()


def test_training_resumes_from_the_latest_checkpoint(pages, tmp_path):
    out = tmp_path / "run"
    train_layout(small(pages, out, max_steps=2, save_steps=2, eval_limit=0))
    assert (out / "checkpoint-2").is_dir()
    train_layout(small(pages, out, max_steps=4, save_steps=2, eval_limit=0, resume_from_checkpoint="latest"))
    steps = [row["step"] for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in row]
    assert steps == [1, 2, 3, 4]  # the resumed run went on from step 2, and logged each step once
    assert json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())["global_step"] == 4


def test_init_from_keeps_the_detector_and_starts_a_new_class_head(pages, tmp_path):
    config = tiny_detector_config()
    config.id2label = {i: f"label{i}" for i in range(11)}
    config.label2id = {v: k for k, v in config.id2label.items()}
    torch.manual_seed(3)
    RTDetrForObjectDetection(config).save_pretrained(tmp_path / "other")
    source = RTDetrForObjectDetection.from_pretrained(tmp_path / "other").state_dict()
    model, _ = initial_model(small(pages, tmp_path / "x", init_from=tmp_path / "other"))
    state = model.state_dict()
    assert model.config.id2label == dict(enumerate(REGIONS))
    kept = [k for k in state if k in source and state[k].shape == source[k].shape]
    new = sorted(k for k in state if k not in kept)
    # Everything but the class head (and the label embedding of the denoising queries) is the source's.
    assert all(torch.equal(state[k], source[k]) for k in kept)
    assert any(k.startswith("model.backbone.") for k in kept) and any(".decoder.layers." in k for k in kept)
    assert new and all("class_embed" in k or "enc_score_head" in k for k in new), new
    assert state["model.enc_score_head.weight"].shape[0] == 5 and source["model.enc_score_head.weight"].shape[0] == 11
    out = train_layout(small(pages, tmp_path / "tuned", init_from=tmp_path / "other", max_steps=1, eval_limit=0))
    assert load_detector(out)[0].config.num_labels == 5


def _image(path, size=(200, 300)):
    Image.new("RGB", size, "white").save(path)
    return path


def test_coco_boxes_are_read_and_every_unusable_one_named(tmp_path):
    _image(tmp_path / "a.png")
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 200, "height": 300}, {"id": 2, "file_name": "gone.png"}],
            "categories": [{"id": 1, "name": "vendor_block"}, {"id": 2, "name": "totals_section"}, {"id": 3, "name": "logo"}],
            "annotations": [
                {"id": 10, "image_id": 1, "category_id": 1, "bbox": [10, 20, 100, 40]},
                {"id": 11, "image_id": 1, "category_id": 3, "bbox": [0, 0, 20, 20]},        # not a region
                {"id": 12, "image_id": 1, "category_id": 2, "bbox": [500, 500, 10, 10]},    # off the page
                {"id": 13, "image_id": 1, "category_id": 1, "bbox": [0, 0, 50, 50]},        # second vendor box
                {"id": 14, "image_id": 2, "category_id": 2, "bbox": [0, 0, 50, 50]},        # image missing
                {"id": 15, "image_id": 1, "category_id": 2, "bbox": [1, 2]},                # malformed
            ]}
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    pages, problems = read_page_boxes(tmp_path / "coco.json")
    assert len(pages) == 1 and pages[0].boxes == {"vendor_block": (10, 20, 110, 60)} and pages[0].size == (200, 300)
    assert len(problems) == 5
    for ann, words in [(11, "'logo' is not a region"), (12, "off the page"), (13, "second vendor_block"),
                       (14, "gone.png: image file not found"), (15, "malformed")]:
        assert any(f"annotation {ann} " in p and words in p for p in problems), (ann, problems)


def test_label_studio_rectangles_are_read_and_every_unusable_one_named(tmp_path):
    _image(tmp_path / "p.png", (400, 200))
    rect = lambda rid, label, x, y, w, h, rot=0: {"id": rid, "type": "rectanglelabels", "from_name": "label", "to_name": "image",  # noqa: E731
                                                  "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rot, "rectanglelabels": [label]}}
    tasks = [
        {"id": 1, "data": {"image": "/data/local-files/?d=p.png"}, "annotations": [{"result": [
            rect("a", "client_info", 10, 20, 50, 25), rect("b", "stamp", 0, 0, 10, 10),
            rect("c", "totals_section", 50, 50, 20, 20, rot=30), rect("d", "invoice_meta", 120, 0, 5, 5)]}]},
        {"id": 2, "data": {"image": "/data/upload/3/missing.png"}, "annotations": [{"result": [rect("e", "vendor_block", 0, 0, 5, 5)]}]},
        {"id": 3, "data": {"image": "p.png"}, "annotations": []},
    ]
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    pages, problems = read_page_boxes(tmp_path / "export.json")
    assert len(pages) == 1 and pages[0].boxes == {"client_info": (40, 40, 240, 90)}
    for where, words in [("result b", "'stamp' is not a region"), ("result c", "rotated"), ("result d", "off the page"),
                         ("task 2", "image file not found"), ("task 3", "no annotation")]:
        assert any(where in p and words in p for p in problems), (where, problems)
    assert len(problems) == 5


def test_init_from_a_pp_doclayout_v2_folder_keeps_its_detector(pages, tmp_path):
    from transformers import PPDocLayoutV2Config, PPDocLayoutV2ForObjectDetection

    tiny = tiny_detector_config().to_dict()
    keep = ("encoder_in_channels", "feat_strides", "encoder_hidden_dim", "d_model", "encoder_ffn_dim", "encoder_attention_heads",
            "decoder_attention_heads", "decoder_ffn_dim", "decoder_layers", "decoder_in_channels", "num_queries", "num_denoising",
            "hidden_expansion")
    reading_order = dict(hidden_size=64, num_attention_heads=4, intermediate_size=128, num_hidden_layers=1, coordinate_size=22,
                         shape_size=20, num_classes=20, global_pointer_head_size=16)
    config = PPDocLayoutV2Config(backbone_config=tiny_detector_config().backbone_config, reading_order_config=reading_order, num_labels=20,
                                 class_thresholds=[0.3] * 20, class_order=list(range(20)), **{k: tiny[k] for k in keep})
    torch.manual_seed(5)
    PPDocLayoutV2ForObjectDetection(config).save_pretrained(tmp_path / "ppdl2")
    source = PPDocLayoutV2ForObjectDetection.from_pretrained(tmp_path / "ppdl2").state_dict()
    model, _ = initial_model(small(pages, tmp_path / "x", init_from=tmp_path / "ppdl2"))
    state = model.state_dict()
    assert model.config.id2label == dict(enumerate(REGIONS))
    kept = [k for k in state if k in source and state[k].shape == source[k].shape]
    assert len(kept) > 0.9 * len(state) and all(torch.equal(state[k], source[k]) for k in kept)
    assert any(k.startswith("model.backbone.") for k in kept)
