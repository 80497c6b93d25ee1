import pytest

from assistant.guards import clean_message, clean_text, mask_card_numbers, mask_contacts


def test_luhn_valid_card_numbers_are_masked_in_any_grouping():
    text, n = mask_card_numbers("cards 4111111111111111 and 5500-0000-0000-0004, order 1234567890123")
    assert n == 2
    assert text == "cards [card number removed] and [card number removed], order 1234567890123"


def test_numbers_failing_luhn_or_too_short_are_kept():
    assert mask_card_numbers("order 4111111111111112, phone 07700 900123") == (
        "order 4111111111111112, phone 07700 900123", 0)


def test_control_characters_are_removed_but_newlines_kept():
    assert clean_text("  hi\x00 there\x1b\nsecond line\t ") == "hi there\nsecond line"


@pytest.mark.parametrize("written", [
    "4111.1111.1111.1111", "4111  1111  1111  1111", "4111/1111/1111/1111", "4111\u00a01111\u00a01111\u00a01111",
    "4111 \u2013 1111 \u2013 1111 \u2013 1111", "3782 822463 10005",
])
def test_card_numbers_are_masked_whatever_separates_their_groups(written):
    assert mask_card_numbers(f"my card is {written}, thanks") == ("my card is [card number removed], thanks", 1)


def test_a_card_followed_by_its_expiry_date_or_by_another_card_is_found():
    assert mask_card_numbers("4111 1111 1111 1111 12/27") == ("[card number removed] 12/27", 1)
    assert mask_card_numbers("5500000000000004 4111111111111111") == (
        "[card number removed] [card number removed]", 2)


def test_contact_details_are_masked_only_when_asked_and_order_numbers_never():
    text = "Write to jo.smith+orders@shop.example.co.uk or call +44 20 7946 0958 / (555) 123-4567, order 5551234567"
    assert clean_message(text) == (text, 0)
    masked, _ = clean_message(text, contacts=True)
    assert masked == ("Write to [e-mail address removed] or call [phone number removed] / [phone number removed], "
                      "order 5551234567")
    assert mask_contacts("ref 0123 and order #004512") == ("ref 0123 and order #004512", 0)
