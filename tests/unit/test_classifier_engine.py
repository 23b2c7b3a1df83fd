"""The classifier on sentences written for these tests (never taken from the corpus)."""

from __future__ import annotations

import dataclasses

import pytest
from newsmon.classifier.engine import FEATURES, Classifier, Verdict, load_weights
from newsmon.shared.messages import Evidence


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier.default()


POSITIVES: list[tuple[str, str, str]] = [
    (
        "en",
        "North Korea sends thousands of troops to Russia's Kursk region",
        "The soldiers are fighting Ukrainian forces, Seoul's spy agency said.",
    ),
    (
        "en",
        "Ukraine captures two North Korean soldiers in Kursk",
        "The wounded prisoners of war were taken to Kyiv for interrogation.",
    ),
    (
        "en",
        "Pyongyang shipped millions of artillery shells and KN-23 missiles to Moscow",
        "The munitions have been fired at Ukrainian cities, officials said.",
    ),
    (
        "en",
        "Putin and Kim Jong Un sign mutual defence treaty",
        "The comprehensive strategic partnership pact obliges each side to give military "
        "assistance if the other is attacked.",
    ),
    (
        "en",
        "Russia helping North Korea with satellite technology and air defence, Seoul says",
        "In exchange for the munitions, Moscow is transferring technology to Pyongyang.",
    ),
    (
        "ko",
        "북한군, 러시아 쿠르스크 전선 투입…사상자 속출",
        "국정원은 러시아에 파병된 북한군 병력 가운데 사상자가 1천여 명에 이른다고 밝혔다.",
    ),
    (
        "ko",
        "北, 러에 170㎜ 자주포·240㎜ 방사포 추가 지원",
        "북한이 러시아에 포탄과 탄도미사일도 계속 보내고 있다고 합참이 전했다.",
    ),
    (
        "ja",
        "北朝鮮兵、ロシア西部クルスク州で戦闘に参加",
        "北朝鮮がロシアに派兵した兵士に多数の死傷者が出ていると韓国国防省が発表した。",
    ),
    (
        "ja",
        "露朝が包括的戦略パートナーシップ条約に署名",
        "プーチン大統領と金正恩総書記が平壌で首脳会談を行い、相互援助を盛り込んだ条約に署名した。",
    ),
    (
        "zh",
        "朝鲜向俄罗斯派兵 朝鲜士兵在库尔斯克参战",
        "韩国情报机构称，朝鲜士兵在库尔斯克州作战中出现伤亡。",
    ),
    (
        "zh",
        "朝鲜向俄罗斯提供炮弹和弹道导弹",
        "这些弹药已被俄军用于乌克兰战场。",
    ),
    (
        "ru",
        "Северокорейские военные воюют на стороне России в Курской области",
        "По данным ВСУ, солдаты КНДР несут большие потери.",
    ),
    (
        "ru",
        "КНДР передала России артиллерийские снаряды и баллистические ракеты KN-23",
        "Боеприпасы из Пхеньяна используются для ударов по Украине.",
    ),
    (
        "ru",
        "Путин и Ким Чен Ын подписали договор о всеобъемлющем стратегическом партнерстве",
        "Договор предусматривает взаимную военную помощь в случае нападения.",
    ),
    (
        "uk",
        "ЗСУ взяли в полон двох північнокорейських солдатів на Курщині",
        "Військовополонених доставили до Києва, повідомили в СБУ.",
    ),
    (
        "uk",
        "Північна Корея передала Росії балістичні ракети та артилерійські снаряди",
        "Росія використовує північнокорейські ракети KN-23 для ударів по Україні.",
    ),
    (
        "pl",
        "Korea Północna wysłała żołnierzy do Rosji",
        "Północnokoreańscy żołnierze walczą w obwodzie kurskim, podał ukraiński wywiad.",
    ),
    (
        "de",
        "Nordkorea liefert Russland Artilleriegranaten und ballistische Raketen",
        "Die Munition wird im Krieg gegen die Ukraine eingesetzt.",
    ),
    (
        "fr",
        "La Corée du Nord envoie des milliers de soldats en Russie",
        "Les troupes nord-coréennes combattent l'Ukraine dans la région de Koursk.",
    ),
    (
        "es",
        "Corea del Norte envía miles de soldados a Rusia",
        "Las tropas norcoreanas combaten contra Ucrania en la región de Kursk.",
    ),
    (
        "it",
        "La Corea del Nord invia migliaia di soldati in Russia",
        "Le truppe nordcoreane combattono contro l'Ucraina nella regione di Kursk.",
    ),
    (
        "vi",
        "Triều Tiên gửi hàng nghìn binh sĩ tới Nga",
        "Binh sĩ Triều Tiên tham chiến tại Kursk và chịu thương vong lớn.",
    ),
]

HARD_NEGATIVES: list[tuple[str, str, str]] = [
    (
        "en",
        "North Korea fires intercontinental ballistic missile into Sea of Japan",
        "South Korea's Joint Chiefs of Staff said the ICBM test launch was the third this year.",
    ),
    (
        "en",
        "Russian forces launch massive drone and missile attack on Kyiv",
        "Five people were killed and dozens wounded, Ukrainian officials said.",
    ),
    (
        "en",
        "Russian tourists return to North Korea's Wonsan Kalma beach resort",
        "The travel agency says more tour groups from Vladivostok will visit Pyongyang in July.",
    ),
    (
        "en",
        "Passenger train service between Moscow and Pyongyang resumes",
        "The railway link across the Tumen river bridge was suspended during the pandemic.",
    ),
    (
        "en",
        "North Korea and Russia discuss trade and economic cooperation",
        "The intergovernmental commission talked about investment, coal exports and workers.",
    ),
    (
        "en",
        "Iran has supplied Russia with Shahed drones used against Ukraine",
        "Tehran denies sending the drones, which have hit power plants across Ukraine.",
    ),
    (
        "ko",
        "북한, 동해상으로 탄도미사일 발사",
        "합참은 북한이 오늘 오전 동해상으로 단거리 탄도미사일 1발을 발사했다고 밝혔다.",
    ),
    (
        "ko",
        "러시아 관광객, 북한 원산갈마 관광지구 방문",
        "러시아 여행사를 통한 관광객들이 평양과 원산을 여행했다.",
    ),
    (
        "ja",
        "北朝鮮が日本海に弾道ミサイルを発射",
        "防衛省によると、ミサイルは日本の排他的経済水域の外に落下した。",
    ),
    ("zh", "朝鲜试射洲际弹道导弹", "导弹落入日本海，日本政府提出抗议。"),
    (
        "ru",
        "Российские войска нанесли удар по Харькову",
        "Погибли три человека, ранены еще десять.",
    ),
    (
        "ru",
        "Возобновлено пассажирское железнодорожное сообщение между Москвой и Пхеньяном",
        "Поезд отправится с Ярославского вокзала, туристы смогут посетить КНДР.",
    ),
    ("ru", "Иран поставляет России дроны «Шахед»", "Тегеран отрицает поставки оружия."),
    ("uk", "Росія атакувала Київ ударними дронами", "Внаслідок атаки є загиблі та поранені."),
    (
        "uk",
        "Північна Корея запустила балістичну ракету в бік Японського моря",
        "Випробування відбулося напередодні навчань США та Південної Кореї.",
    ),
    (
        "de",
        "Russland und Nordkorea vereinbaren mehr Tourismus",
        "Russische Touristen sollen Skigebiete besuchen.",
    ),
]


def _titles(cases: list[tuple[str, str, str]]) -> list[str]:
    return [f"{lang}: {title[:40]}" for lang, title, _ in cases]


@pytest.mark.parametrize(("lang", "title", "summary"), POSITIVES, ids=_titles(POSITIVES))
def test_positive_stories_match(clf: Classifier, lang: str, title: str, summary: str) -> None:
    verdict = clf.classify(title=title, summary=summary, lang=lang)
    assert verdict.match, verdict
    assert verdict.categories
    assert verdict.evidence


@pytest.mark.parametrize(("lang", "title", "summary"), HARD_NEGATIVES, ids=_titles(HARD_NEGATIVES))
def test_hard_negatives_do_not_match(clf: Classifier, lang: str, title: str, summary: str) -> None:
    verdict = clf.classify(title=title, summary=summary, lang=lang)
    assert not verdict.match, verdict


def test_categories_name_what_fired(clf: Classifier) -> None:
    verdict = clf.classify(
        title="North Korean troops killed in Kursk",
        summary="Pyongyang also sent 240 mm rocket launchers to Russia.",
    )
    assert verdict.match
    assert set(verdict.categories) >= {"troops", "casualties", "weapons"}
    assert list(verdict.categories) == sorted(
        verdict.categories,
        key=["troops", "casualties", "weapons", "tech_transfer", "treaty_diplomacy"].index,
    )


def _check_offsets(fields: dict[str, str], evidence: tuple[Evidence, ...]) -> None:
    for e in evidence:
        source = fields[e.field]
        assert source[e.start : e.start + len(e.sentence)] == e.sentence
        for t in e.terms:
            assert 0 <= t.start < t.end <= len(e.sentence)
            assert e.sentence[t.start : t.end] == t.term


def test_evidence_offsets_point_into_the_original_fields(clf: Classifier) -> None:
    fields = {
        "title": "Seoul: Pyongyang’s troops fight for Russia",
        "summary": "Intro sentence. North Korean soldiers were killed near Sudzha, Kursk region.",
        "text": "Body one. Moscow received ＫＮ－２３ missiles from the DPRK. More text.",
    }
    verdict = clf.classify(**fields)
    assert verdict.match
    assert {e.field for e in verdict.evidence} == {"title", "summary", "text"}
    _check_offsets(fields, verdict.evidence)
    text_evidence = next(e for e in verdict.evidence if e.field == "text")
    assert text_evidence.start == fields["text"].index("Moscow")
    terms = {t.term: t.category for t in text_evidence.terms}
    assert terms["ＫＮ－２３"] == "weapons"
    assert terms["DPRK"] == "dprk_actor"


def test_evidence_offsets_with_decomposed_and_cjk_text(clf: Classifier) -> None:
    fields = {
        "title": "北·러 군사협력 강화…북한군 파병",
        "summary": "Le Nord-Core\u0301en Kim Jong-un a rencontre\u0301 Poutine. 朝鲜向俄罗斯派兵。",
        "text": "",
    }
    verdict = clf.classify(**fields)
    _check_offsets(fields, verdict.evidence)
    assert verdict.match


def test_stems_cover_inflections_but_respect_word_boundaries(clf: Classifier) -> None:
    hit = clf.classify(title="Войска КНДР воюют за Россию в Курской области")
    terms = {t.term for e in hit.evidence for t in e.terms}
    assert {"Войска", "КНДР", "Россию", "Курской"} <= terms
    # "Russ" inside Belorussia / "Kursk" inside no word: no Russia actor from "belorussian".
    miss = clf.classify(title="Belorussian farmers and Prussian history")
    assert not miss.match
    assert not miss.evidence


def test_korean_abbreviation_needs_a_boundary(clf: Classifier) -> None:
    # 러 inside 여러 ("several") or 달러 ("dollar") is not Russia.
    verdict = clf.classify(title="북한, 여러 발의 탄도미사일 발사…수백만 달러 비용")
    assert not verdict.match


def test_score_is_a_probability_and_threshold_applies() -> None:
    strict = Classifier.default(threshold=1.0)
    lenient = Classifier.default(threshold=0.0)
    item = {"title": "North Korean troops fight for Russia in Kursk"}
    assert not strict.classify(**item).match
    assert lenient.classify(**item).match
    assert 0.0 <= strict.classify(**item).score <= 1.0
    assert strict.threshold == 1.0


def test_invalid_threshold_is_rejected() -> None:
    with pytest.raises(ValueError, match="threshold"):
        Classifier.default(threshold=1.5)


def test_classify_many_matches_classify(clf: Classifier) -> None:
    items = [
        {"title": "North Korean troops fight for Russia", "lang": "en"},
        {"title": "Weather is sunny", "summary": None},
    ]
    assert clf.classify_many(items) == [
        clf.classify(title="North Korean troops fight for Russia"),
        clf.classify(title="Weather is sunny"),
    ]


def test_verdict_is_frozen_and_versioned(clf: Classifier) -> None:
    verdict = clf.classify(title="")
    assert isinstance(verdict, Verdict)
    assert verdict == Verdict(False, verdict.score, (), (), verdict.version)
    assert verdict.version.startswith("rules-1+lex-")
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.match = True  # type: ignore[misc]


def test_weights_file_names_the_engine_features() -> None:
    weights = load_weights()
    assert len(weights.weights) == len(FEATURES)
    assert 0.0 < weights.threshold < 1.0
    with pytest.raises(ValueError, match="features"):
        load_weights('{"features": ["x"], "weights": [1], "bias": 0, "threshold": 0.5}')


# Items with lexicon hits but no North Korea, and no topic beside Russia or the front (other
# military news, trade, tourism): scored without the sentence split. Each must get what the
# sentence-by-sentence path gives. (title, summary, whether the shortcut applies)
WITHOUT_DPRK: list[tuple[str, str, bool]] = [
    ("Iran tests a new ballistic missile", "The launch came days after talks with Beijing.", True),
    ("Tourists ride the Trans-Siberian railway", "Trade fair in Vladivostok draws crowds.", True),
    ("Moscow hosts a film festival", "Russian and Belarusian directors attend.", True),
    ("Troops and drones on parade", "Missiles and artillery shells were shown.", True),
    # Russia (or the front) beside a topic: topical_near counts per sentence, so no shortcut.
    ("Russia shells Kharkiv overnight", "Missiles hit power plants. Troops advance.", False),
    ("Fighting in Kursk region continues", "Ukrainian drones struck an ammunition depot.", False),
]


@pytest.mark.parametrize(("title", "summary", "applies"), WITHOUT_DPRK)
def test_items_without_dprk_score_as_the_sentence_path_does(
    clf: Classifier, title: str, summary: str, applies: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsmon.classifier import engine

    taken: list[bool] = []
    irrelevant = engine._sentences_irrelevant

    def spy(categories: set[str]) -> bool:
        taken.append(irrelevant(categories))
        return taken[-1]

    monkeypatch.setattr(engine, "_sentences_irrelevant", spy)
    shortcut = clf.classify(title=title, summary=summary)
    features = engine.extract_features(clf.lexicon, title=title, summary=summary)
    assert taken == [applies, applies]
    monkeypatch.setattr(engine, "_sentences_irrelevant", lambda categories: False)
    assert clf.classify(title=title, summary=summary) == shortcut
    assert engine.extract_features(clf.lexicon, title=title, summary=summary) == features
