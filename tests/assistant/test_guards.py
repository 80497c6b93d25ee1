from assistant.guards import clean_text, mask_card_numbers


def test_luhn_valid_card_numbers_are_masked_in_any_grouping():
    text, n = mask_card_numbers("cards 4111111111111111 and 5500-0000-0000-0004, order 1234567890123")
    assert n == 2
    assert text == "cards [card number removed] and [card number removed], order 1234567890123"


def test_numbers_failing_luhn_or_too_short_are_kept():
    assert mask_card_numbers("order 4111111111111112, phone 07700 900123") == (
        "order 4111111111111112, phone 07700 900123", 0)


def test_control_characters_are_removed_but_newlines_kept():
    assert clean_text("  hi\x00 there\x1b\nsecond line\t ") == "hi there\nsecond line"
