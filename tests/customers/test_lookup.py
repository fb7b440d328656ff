import pytest
from django.db import connection

from crm.models import Role
from customers.models import Customer, MeterAssignment
from customers.selectors import InvalidQuery, lookup_customers


@pytest.fixture
def people(org, make_customer):
    home = org["home"]
    return {
        "an": make_customer(
            home, name="Nguyễn Văn An", street="12 Lê Lợi", ward="Phường Bến Nghé", phones=["0903 123 456"]
        ),
        "an_q3": make_customer(
            home,
            name="Nguyễn Văn An",
            street="5 Lý Chính Thắng",
            ward="Phường Tân Định",
            district="Quận 3",
            phones=["0909 000 001"],
        ),
        "han": make_customer(
            home, name="Lê Ngọc Hân", street="3 Pasteur", ward="Phường Bến Nghé", phones=["0909 000 002"]
        ),
        "hang": make_customer(
            home, name="Lê Ngọc Hằng", street="4 Pasteur", ward="Phường Bến Nghé", phones=["0909 000 003"]
        ),
        "dat": make_customer(
            home, name="Đặng Văn Đạt", street="9 Hai Bà Trưng", ward="Phường Đa Kao", phones=["0909 000 004"]
        ),
    }


def codes(result):
    return [c.code for c in result.customers]


def test_words_across_name_and_address_without_accents_find_the_customer(people, staff):
    home_district = people["an"].district  # "Quận 1"
    found = lookup_customers(user=staff[Role.AGENT], query=f"nguyen van an {home_district}")
    assert codes(found) == [people["an"].code]
    assert found.customers[0].match == "text"


def test_d_stroke_folds_to_d(people, staff):
    assert codes(lookup_customers(user=staff[Role.AGENT], query="dang van dat")) == [people["dat"].code]
    assert codes(lookup_customers(user=staff[Role.AGENT], query="ĐẶNG")) == [people["dat"].code]


def test_accents_as_typed_rank_first(people, staff):
    found = lookup_customers(user=staff[Role.AGENT], query="Ngọc Hân")
    assert codes(found) == [people["han"].code, people["hang"].code]
    assert [c.match for c in found.customers] == ["accents", "text"]
    found = lookup_customers(user=staff[Role.AGENT], query="ngọc hằng")
    assert codes(found) == [people["hang"].code]  # "hang" is not a prefix of "han"


def test_accent_free_query_finds_both_without_preference(people, staff):
    found = lookup_customers(user=staff[Role.AGENT], query="ngoc han")
    assert set(codes(found)) == {people["han"].code, people["hang"].code}
    assert {c.match for c in found.customers} == {"text"}


@pytest.mark.parametrize("spelling", ["0903 123 456", "+84903123456", "84-903-123-456", "0903.123.456"])
def test_phone_in_any_spelling_is_an_exact_match(people, staff, spelling):
    found = lookup_customers(user=staff[Role.AGENT], query=spelling)
    assert codes(found) == [people["an"].code]
    assert found.customers[0].match == "phone"


def test_code_and_meter_serial_are_exact_matches(people, staff):
    agent = staff[Role.AGENT]
    found = lookup_customers(user=agent, query=people["dat"].code.lower())
    assert codes(found) == [people["dat"].code]
    assert found.customers[0].match == "code"
    serial = MeterAssignment.objects.get(contract__customer=people["han"]).meter.serial
    found = lookup_customers(user=agent, query=serial.lower())
    assert codes(found) == [people["han"].code]
    assert found.customers[0].match == "serial"


def test_numbers_match_whole_words(people, staff):
    # "Phường 8" must not match "Phường 18" and "Quận 1" not "Quận 10"
    found = lookup_customers(user=staff[Role.AGENT], query="nguyen van an 3")
    assert codes(found) == [people["an_q3"].code]


def test_lookup_never_leaves_the_users_scope(two_customers, staff):
    mine, theirs = two_customers
    agent = staff[Role.AGENT]
    assert codes(lookup_customers(user=agent, query="Trần Thị Hân")) == [mine.code]
    assert codes(lookup_customers(user=agent, query=theirs.code)) == []
    assert codes(lookup_customers(user=agent, query="0903 333 444")) == []
    assert set(codes(lookup_customers(user=staff[Role.ADMINISTRATOR], query="tran thi han"))) == {
        mine.code,
        theirs.code,
    }


def test_a_name_typed_in_order_is_found_through_its_junctions(people, staff, make_customer, org):
    reversed_name = make_customer(org["home"], name="Phạm An Văn", phones=["0909 000 005"])
    found = lookup_customers(user=staff[Role.AGENT], query="van an")
    # "Văn An" in order, in two customers' names; "An Văn" has the words but not in that order
    assert set(codes(found)) == {people["an"].code, people["an_q3"].code}
    assert reversed_name.code not in codes(found)


def test_words_in_another_order_are_still_found_when_no_name_matches_in_order(people, staff):
    found = lookup_customers(user=staff[Role.AGENT], query="an nguyen")
    assert set(codes(found)) == {people["an"].code, people["an_q3"].code}


def test_name_and_address_words_together(people, staff):
    found = lookup_customers(user=staff[Role.AGENT], query="le ngoc han 3 pasteur")
    assert codes(found) == [people["han"].code]


def test_no_match_is_an_empty_list(people, staff):
    found = lookup_customers(user=staff[Role.AGENT], query="khong co ai ten nay")
    assert found.customers == []
    assert found.truncated is False


@pytest.mark.parametrize("bad", ["", "   ", "!!!", "x" * 121, "abc\x00def", "a b c d e f g h i"])
def test_unusable_input_is_refused_with_a_message(org, staff, bad):
    with pytest.raises(InvalidQuery) as exc:
        lookup_customers(user=staff[Role.AGENT], query=bad)
    assert str(exc.value)


def test_a_broad_query_is_bounded_and_says_so(org, make_customer, staff):
    for i in range(6):
        make_customer(org["home"], name=f"Nguyễn Thị Mai {i}", phones=[f"0912 000 00{i}"])
    found = lookup_customers(user=staff[Role.AGENT], query="nguyen", limit=4)
    assert len(found.customers) == 4
    assert found.truncated is True


@pytest.mark.postgres
def test_word_search_uses_the_trigram_index_on_postgresql(people, staff):
    if connection.vendor != "postgresql":
        pytest.skip("the trigram index exists on PostgreSQL only")
    from customers.selectors import _text_filter

    queryset = _text_filter(
        Customer.objects.for_user(staff[Role.ADMINISTRATOR]), ["nguyen", "van", "an", "1"]
    )[:50]
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "customers_search_trgm" in plan, plan
    assert "UPPER" not in plan


@pytest.mark.postgres
def test_a_name_in_order_asks_the_index_only_for_the_junctions(people, staff):
    if connection.vendor != "postgresql":
        pytest.skip("the trigram index exists on PostgreSQL only")
    from customers.selectors import _in_order_filter

    queryset = _in_order_filter(
        Customer.objects.for_user(staff[Role.ADMINISTRATOR]), ["nguyen", "van", "an", "1"], 3
    )
    sql, params = queryset[:50].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    index_lines = [line for line in plan.splitlines() if "Index Cond" in line]
    assert "customers_search_trgm" in plan, plan
    assert index_lines and all("strpos" not in line for line in index_lines), plan
    assert "'%enva%'" in plan and "'%anan%'" in plan, plan  # nguyen|van, van|an
    assert "strpos" in plan.lower(), plan


def test_index_trigrams_take_the_rare_ones_across_and_inside_words():
    from customers.selectors import index_trigrams

    shares = {
        "ngu": 0.4,
        "guy": 0.4,
        "uye": 0.4,
        "yen": 0.4,
        "env": 0.2,
        "nva": 0.05,
        "van": 0.3,
        "16 ": 0.02,
    }
    picked = index_trigrams(["nguyen", "van", "16"], 2, shares, 2_600_000)
    assert picked == ["16 ", "nva", "env"]  # rarest first; every one at most MAX_INDEX_SHARE


def test_index_trigrams_keep_at_least_two_and_use_junctions_without_statistics():
    from customers.selectors import index_trigrams

    common = dict.fromkeys(("tha", "han", "anh", "nhh", "hho", "hoa"), 0.9)
    assert index_trigrams(["thanh", "hoa"], 2, common, 1000) == ["anh", "han"]
    assert index_trigrams(["thanh", "hoa"], 2, {}, 0) == ["nhho"]


@pytest.mark.postgres
def test_statistics_refresh_counts_trigram_shares(people):
    from customers.models import SearchTrigram
    from customers.services import search_statistics_refresh

    stored = search_statistics_refresh()
    if connection.vendor != "postgresql":
        assert stored == 0
        assert not SearchTrigram.objects.exists()
        return
    assert stored == SearchTrigram.objects.count() > 0
    # "ngu" is in the two Nguyễn of the five customers; the sample is the whole (small) table
    assert SearchTrigram.objects.get(trigram="ngu").share == pytest.approx(2 / 5)


@pytest.mark.django_db(transaction=True)
def test_search_statistics_refresh_is_safe_with_two_runs_at_once(org, make_customer):
    """``customers.tasks.refresh_search_statistics`` (daily, and ``manage.py refresh_search_statistics`` after a
    bulk load) is DELETE then INSERT in one transaction with no lock: a second run that starts while the first
    has not committed waits on the first's new rows and then fails with a duplicate key on
    ``customers_searchtrigram_pkey`` instead of replacing the counts. PostgreSQL only (the job is a no-op on
    SQLite)."""
    import threading
    import time

    from django.db import connection, connections, transaction

    from customers.services import search_statistics_refresh

    if connection.vendor != "postgresql":
        pytest.skip("the statistics exist on PostgreSQL only")
    for i in range(5):
        make_customer(org["home"], name=f"Nguyễn Văn An {i}", phones=[f"0912 000 4{i:02d}"])
    search_statistics_refresh()
    first_wrote = threading.Event()
    errors: list[str] = []

    def first():  # a run still inside its transaction (a slow sample of a big table)
        try:
            with transaction.atomic():
                search_statistics_refresh()
                first_wrote.set()
                time.sleep(1.5)
        except Exception as exc:
            errors.append(f"first: {exc!r}")
        finally:
            first_wrote.set()
            connections.close_all()

    def second():  # the other cluster's (or the command's) run
        first_wrote.wait()
        try:
            search_statistics_refresh()
        except Exception as exc:
            errors.append(f"second: {exc!r}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []


def test_each_candidate_carries_its_unit_read_once_per_lookup(org, make_customer, staff, django_assert_max_num_queries):
    """The units beside the candidates are not joined to the lookup's query: one unit comes from the shared
    cache (here the database: the tests keep no cache), several in one query whatever the candidates' number."""
    home, other = org["home"], org["other_corporation"]
    shared = [make_customer(unit, name="Trần Văn Bình", phones=["0903 555 666"]) for unit in (home, other, home)]
    only = make_customer(other, name="Lý Thị Cúc", phones=["0903 555 777"])
    admin = staff[Role.ADMINISTRATOR]
    with django_assert_max_num_queries(3):  # the user's scope, the phone's candidates, then their two units
        found = lookup_customers(user=admin, query="0903 555 666")
    assert sorted((c.code, c.unit.code) for c in found.customers) == sorted((c.code, c.unit.code) for c in shared)
    with django_assert_max_num_queries(3):
        found = lookup_customers(user=admin, query="0903 555 777")
    assert [(c.code, c.unit.code, c.unit.company.code) for c in found.customers] == [
        (only.code, other.code, other.company.code)
    ]
