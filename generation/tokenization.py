"""Tokens per word, measured with each model's own tokenizer (never guessed), cached per process.

The ratio is measured on fixed reference passages of ordinary prose, one per language, by
asking the backend to tokenize them (the embedded tokenizer, or vLLM's ``/tokenize``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from generation.counting import count_words

if TYPE_CHECKING:
    from generation.backends.base import Backend

REFERENCE = {
    "en": (
        "The old lighthouse stood at the edge of the cliff for more than a century. Every evening the keeper "
        "climbed the narrow stairs, cleaned the great lens and lit the lamp, so that ships passing in the dark "
        "would know where the rocks were. Storms came often in winter. Waves rose higher than the houses in the "
        "village below, and the wind made the windows sing. Still the light kept turning, steady and patient.\n\n"
        "When the new automatic beacon was installed, the keeper was asked to leave. He packed his books, his "
        "notebooks full of weather records and a small painting of the sea. On his last night he wrote a letter "
        "to whoever might live there next: take care of the place, listen to the wind, and remember that a "
        "light is only useful if someone trusts it. Twenty years later, a student found the letter behind a "
        "loose board and decided to write a history of the coast, chapter by chapter, season by season."
    ),
    "zh": (
        "老灯塔在悬崖边上矗立了一百多年。每天傍晚，守塔人沿着狭窄的楼梯爬上去，擦亮巨大的透镜，点燃灯火，"
        "让夜里经过的船只知道礁石在哪里。冬天常有风暴，海浪比山下村子里的房屋还高，风吹得窗户嗡嗡作响。"
        "可是灯光一直在转动，稳定而耐心。后来安装了新的自动信标，守塔人被请离开。他收拾好书本、"
        "写满天气记录的笔记本和一幅小小的海景画。最后一个晚上，他给以后住在这里的人写了一封信："
        "照顾好这个地方，倾听风声，记住灯光只有在有人信任它的时候才有用。二十年后，一个学生在松动的木板后面"
        "发现了这封信，决定一章一章、一季一季地写一部海岸的历史。"
    ),
}

_CACHE: dict[tuple[str, str], float] = {}


async def tokens_per_word(backend: "Backend", language: str = "en") -> float:
    """Tokens per LongBench-Write word for ``backend``'s model in ``language`` ('en' or 'zh')."""
    key = (backend.description, language)
    if key not in _CACHE:
        text = REFERENCE["zh" if language == "zh" else "en"]
        _CACHE[key] = await backend.count_tokens(text) / count_words(text)
    return _CACHE[key]
