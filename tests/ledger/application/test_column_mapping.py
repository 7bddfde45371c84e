"""Column mappings: which published column holds which field; nothing silently ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.application.mapping import PRACTICE_FIELDS, ColumnMap
from ledger.domain.errors import InvalidInput

REQUIRED = ("practice", "name", "list_size")


def resolve(mapping: ColumnMap, *header: str) -> dict[str, str]:
    return mapping.resolve(list(header), PRACTICE_FIELDS, REQUIRED, "f.csv")


def test_fields_are_named_case_insensitively_with_spaces_hyphens_and_underscores_alike() -> None:
    chosen = resolve(ColumnMap(), "Practice", "NAME", "List Size", "Acute Weighted",
                     "mental-health_weighted", "note")
    assert chosen == {"practice": "practice", "name": "name", "list size": "list_size",
                      "acute weighted": "acute_weighted",
                      "mental-health_weighted": "mental_health_weighted"}


@pytest.mark.parametrize("column", ["Mental Health", "Acute", "Prescr WP", "G&A WP",
                                    "Registered Patients", "Population", "weighted_acute"])
def test_a_column_that_looks_like_a_field_is_refused_naming_it(column: str) -> None:
    with pytest.raises(InvalidInput) as error:
        resolve(ColumnMap(), "practice", "name", "list_size", column)
    assert f"{column!r} looks like a field but is not one" in error.value.message
    assert "--ignore COLUMN" in error.value.message
    # Skipped when asked to.
    assert column.lower() not in resolve(ColumnMap.build(ignore=[column]), "practice", "name",
                                         "list_size", column)


def test_with_a_mapping_every_other_column_must_be_ignored() -> None:
    mapping = ColumnMap.build(["practice=Practice_Code", "name=GP_Practice_Name",
                               "list_size=Registered", "acute=G&A WP"])
    header = ("Practice_Code", "GP_Practice_Name", "Registered", "G&A WP", "ICB", "Latitude")
    with pytest.raises(InvalidInput, match=r"columns 'ICB', 'Latitude' are not mapped: map them"):
        resolve(mapping, *header)
    ignoring = ColumnMap.build(["practice=Practice_Code", "name=GP_Practice_Name",
                                "list_size=Registered", "acute=G&A WP"], ["icb", "LATITUDE"])
    assert resolve(ignoring, *header) == {"practice_code": "practice",
                                          "gp_practice_name": "name",
                                          "registered": "list_size", "g&a wp": "acute_weighted"}


def test_a_mapped_column_must_exist_and_a_field_must_be_known() -> None:
    with pytest.raises(InvalidInput, match=r"no column 'GP_Name' to map"):
        resolve(ColumnMap.build(["name=GP_Name"]), "practice", "name", "list_size")
    with pytest.raises(InvalidInput, match="this import has no field postcode"):
        resolve(ColumnMap.build(["postcode=Practice_Postcode"]), "practice", "name",
                "list_size", "Practice_Postcode")
    with pytest.raises(InvalidInput, match="write --map FIELD=COLUMN"):
        ColumnMap.build(["practice"])


def test_two_columns_may_not_hold_one_field() -> None:
    # A column named like a field that is mapped to another column is not silently dropped.
    with pytest.raises(InvalidInput, match="column 'list_size' is not mapped"):
        resolve(ColumnMap.build(["list_size=Patients"], ["x"]), "practice", "name",
                "list_size", "Patients")
    with pytest.raises(InvalidInput, match="columns 'list size' and 'list_size' both hold"):
        resolve(ColumnMap(), "practice", "name", "List Size", "list_size")


def test_a_missing_required_field_is_refused_naming_it() -> None:
    with pytest.raises(InvalidInput, match="missing column list_size"):
        resolve(ColumnMap(), "practice", "name", "note")


def test_round_takes_a_list_size_published_as_an_average_half_up() -> None:
    mapping = ColumnMap.build(["list_size=round(Population)"])
    chosen = {"population": "list_size"}
    assert mapping.values(chosen, {"population": "4068.5"}, "l") == {"list_size": "4069"}
    assert mapping.values(chosen, {"population": "4068.499999"}, "l") == {"list_size": "4068"}
    with pytest.raises(InvalidInput, match="l: malformed list size '-1' to round"):
        mapping.values(chosen, {"population": "-1"}, "l")
    with pytest.raises(InvalidInput, match=r"round\(\.\.\.\) is for list_size only"):
        ColumnMap.build(["acute=round(G&A WP)"])


def test_a_mapping_file_is_toml_with_a_map_table_and_an_ignore_list(tmp_path: Path) -> None:
    file = tmp_path / "m.toml"
    file.write_text('ignore = ["ICB"]\n[map]\npractice = "Practice_Code"\n'
                    'mental-health = "MH WP"\n', encoding="utf-8")
    mapping = ColumnMap.build(["name=GP"], [], file)
    assert mapping.columns == {"practice": "Practice_Code",
                               "mental_health_weighted": "MH WP", "name": "GP"}
    assert mapping.ignore == {"icb"}
    for bad in ('[map]\npractice = 3\n', 'mapping = "x"\n', 'practice = "a\n'):
        file.write_text(bad, encoding="utf-8")
        with pytest.raises(InvalidInput) as error:
            ColumnMap.build([], [], file)
        assert error.value.rule == "mapping"
    with pytest.raises(InvalidInput, match="cannot read"):
        ColumnMap.build([], [], tmp_path / "missing.toml")
