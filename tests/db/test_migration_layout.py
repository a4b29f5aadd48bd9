"""One place for each database object (docs/database.md).

Until the first release the migrations are a baseline: one file per domain, and every function,
view, policy, trigger, table, index and type is created by exactly one statement of one file,
in its final form (no later file replaces, drops, renames or alters it). From the first release
on, changes are new files only; set FIRST_RELEASE_UP_TO then, and the files up to it stay the
baseline while later files may replace what it created (the current definition of an object is
then the one in the last file that creates or replaces it).

The files are read statement by statement, policies created in a loop of a DO block included;
the database the session migrated from them (tests/conftest.py) holds exactly the objects read,
so nothing created by a statement this parser cannot read escapes the rule.
"""
from __future__ import annotations

import collections
import re
from pathlib import Path

import pytest

from app.migrations import migration_files, split_version

# The newest migration of the first release (its version, e.g. "20270115000100"); None while
# nothing is released.
FIRST_RELEASE_UP_TO: str | None = None

# The newest migration version before the migrations were folded into one file per domain: a
# database migrated then reports it as its schema_version, so the newest file never goes back
# before it.
NEWEST_BEFORE_THE_FOLD = "20261203000300"

SCHEMAS = ("public", "private")
TYPE_ALIASES = {
    "timestamptz": "timestamp with time zone", "timestamp": "timestamp without time zone",
    "timetz": "time with time zone", "time": "time without time zone", "int": "integer", "int4": "integer",
    "int8": "bigint", "int2": "smallint", "bool": "boolean", "varchar": "character varying",
    "float8": "double precision", "float4": "real", "decimal": "numeric",
}


# ---- reading the files ------------------------------------------------------------------------
def _skip_quoted(text: str, i: int) -> int | None:
    """The index after the comment, string, quoted name or dollar-quoted body starting at i;
    None when none starts there."""
    if text.startswith("--", i):
        end = text.find("\n", i)
        return len(text) if end < 0 else end + 1
    if text.startswith("/*", i):
        return text.index("*/", i + 2) + 2
    if text[i] == "'":
        j = i + 1
        while True:
            k = text.index("'", j)
            if text.startswith("''", k):
                j = k + 2
                continue
            return k + 1
    if text[i] == '"':
        return text.index('"', i + 1) + 1
    if text[i] == "$":
        tag = re.match(r"\$(?:[A-Za-z_]\w*)?\$", text[i:])
        if tag:
            return text.index(tag.group(0), i + len(tag.group(0))) + len(tag.group(0))
    return None


def statements(text: str) -> list[str]:
    """The statements of a SQL text, comments removed (string and dollar-quoted bodies kept)."""
    found, current, i = [], [], 0
    while i < len(text):
        after = _skip_quoted(text, i)
        if after is not None:
            if not text.startswith(("--", "/*"), i):
                current.append(text[i:after])
            else:
                current.append(" ")
            i = after
        elif text[i] == ";":
            found.append("".join(current).strip())
            current, i = [], i + 1
        else:
            current.append(text[i])
            i += 1
    if "".join(current).strip():
        found.append("".join(current).strip())
    return [s for s in found if s]


def _qualified(name: str) -> str:
    name = name.strip().lower().replace('"', "")
    return name if "." in name else f"public.{name}"


def _split_top_level(text: str, separator: str = ",") -> list[str]:
    parts, depth, current, i = [], 0, [], 0
    while i < len(text):
        after = _skip_quoted(text, i)
        if after is not None:
            current.append(text[i:after])
            i = after
            continue
        char = text[i]
        depth += char == "("
        depth -= char == ")"
        if char == separator and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _type_name(text: str) -> str:
    text = re.sub(r"\s+", " ", text.strip().lower()).replace("pg_catalog.", "")
    arrays = ""
    while text.endswith("[]"):
        text, arrays = text[:-2].strip(), arrays + "[]"
    text = re.sub(r"\(.*\)$", "", text).strip()  # numeric(12, 4) -> numeric
    return TYPE_ALIASES.get(text, text) + arrays


def input_argument_types(arguments: str) -> tuple[str, ...]:
    """The types of a function's input arguments, from the text between its parentheses."""
    types = []
    for argument in _split_top_level(arguments):
        argument = re.split(r"\s+default\s+|\s*=\s*", argument, maxsplit=1, flags=re.I)[0]
        words = argument.split()
        mode = words[0].lower() if words[0].lower() in ("in", "out", "inout", "variadic") else None
        if mode:
            words = words[1:]
        if mode == "out":
            continue
        # Named as this project always writes them ("p_id uuid"); an unnamed argument is its type.
        types.append(_type_name(" ".join(words[1:] if len(words) > 1 else words)))
    return tuple(types)


def _expand_do_block(body: str) -> list[str]:
    """The statements a DO block runs once per element of `foreach x in array array[...]`
    through `execute format($f$...$f$, x)`, with %1$s and %1$I replaced by each element."""
    expanded = []
    for loop in re.finditer(r"foreach\s+\w+\s+in\s+array\s+array\s*\[(.*?)\]\s*loop(.*?)end\s+loop", body, re.S | re.I):
        names = re.findall(r"'([^']*)'", loop.group(1))
        for template in re.findall(r"format\(\s*\$f\$(.*?)\$f\$", loop.group(2), re.S):
            expanded += [template.replace("%1$s", name).replace("%1$I", name) for name in names]
    return expanded


def definitions(statement: str) -> list[tuple]:
    """The objects a statement creates, each as (kind, identity...)."""
    text = re.sub(r"\s+", " ", statement).strip()
    low = text.lower()
    if re.match(r"do\b", low):
        body = re.match(r"do\s+(\$\w*\$)(.*)\1", statement, re.S | re.I)
        return [d for inner in _expand_do_block(body.group(2) if body else "") for d in definitions(inner)]
    if m := re.match(r"create (?:or replace )?(function|procedure) ([\w.\"]+)\s*\(", low):
        start = m.end() - 1
        depth, i = 0, start
        while True:
            after = _skip_quoted(text, i)
            if after is not None:
                i = after
                continue
            depth += text[i] == "("
            depth -= text[i] == ")"
            if depth == 0:
                break
            i += 1
        return [("function", _qualified(m.group(2)), input_argument_types(text[start + 1:i]))]
    if m := re.match(r"create (?:(?:unlogged|temp|temporary) )?table (?:if not exists )?([\w.\"]+)", low):
        return [("table", _qualified(m.group(1)))]
    if m := re.match(r"create (?:or replace )?(?:materialized )?view ([\w.\"]+)", low):
        return [("view", _qualified(m.group(1)))]
    if m := re.match(r'create policy ("(?:[^"]|"")+"|\w+) on ([\w.\"]+)', text, re.I):
        return [("policy", m.group(1).strip('"').replace('""', '"'), _qualified(m.group(2)))]
    if m := re.match(r"create (?:or replace )?(?:constraint )?trigger (\w+) .*? on ([\w.\"]+)", low):
        return [("trigger", m.group(1), _qualified(m.group(2)))]
    if m := re.match(r"create (?:unique )?index (?:concurrently )?(?:if not exists )?(\w+) on (?:only )?([\w.\"]+)", low):
        return [("index", f"{_qualified(m.group(2)).split('.')[0]}.{m.group(1)}")]
    if m := re.match(r"create type ([\w.\"]+)", low):
        return [("type", _qualified(m.group(1)))]
    return []


# What replaces, removes or reshapes an object after it was created: not in the baseline.
REDEFINITION = re.compile(
    r"^(drop (function|procedure|view|materialized view|policy|trigger|table|index|type)\b"
    r"|alter (function|procedure|view|materialized view|table|index|type|policy|trigger)\b.*"
    r"\b(rename|set schema|drop constraint|drop column|add column|alter column|add value)\b)", re.I)


def read(files: list[Path]) -> tuple[dict[tuple, list[str]], list[str]]:
    """Every object created by the files, with the files creating it (once per statement), and
    the statements that redefine an object."""
    created: dict[tuple, list[str]] = collections.defaultdict(list)
    redefinitions = []
    for path in files:
        for statement in statements(path.read_text()):
            for key in definitions(statement):
                created[key].append(path.name)
            flat = re.sub(r"\s+", " ", statement)
            if REDEFINITION.match(flat):
                redefinitions.append(f"{path.name}: {flat[:120]}")
    return created, redefinitions


def baseline_files() -> list[Path]:
    files = migration_files()
    if FIRST_RELEASE_UP_TO is None:
        return files
    return [path for path in files if split_version(path)[0] <= FIRST_RELEASE_UP_TO]


# ---- the rule ---------------------------------------------------------------------------------
def test_the_reader_sees_what_the_migrations_create():
    created, _ = read(migration_files())
    kinds = collections.Counter(key[0] for key in created)
    assert all(kinds[kind] for kind in ("function", "table", "policy", "trigger", "index", "type")), kinds
    # Policies created in a DO block's loop are read too.
    assert ("policy", "Managers can delete business_holidays", "public.business_holidays") in created
    assert ("function", "private.sla_thresholds",
            ("timestamp with time zone", "integer", "integer", "timestamp with time zone")) in created


def test_every_object_is_created_once_in_the_baseline():
    created, _ = read(baseline_files())
    twice = {" ".join(map(str, key)): files for key, files in created.items() if len(files) > 1}
    assert twice == {}, "defined more than once (keep one definition, in its final form):\n" + "\n".join(
        f"  {name}: {', '.join(files)}" for name, files in sorted(twice.items()))


def test_nothing_in_the_baseline_replaces_drops_or_reshapes_an_object():
    _, redefinitions = read(baseline_files())
    assert redefinitions == [], "fold these into the object's one definition:\n" + "\n".join(redefinitions)


def test_files_are_named_as_the_supabase_cli_expects_one_per_domain():
    files = migration_files()
    assert [p.name for p in files if not re.fullmatch(r"\d{14}_[a-z0-9_]+\.sql", p.name)] == []
    domains = [split_version(path)[1] for path in baseline_files()]
    assert len(domains) == len(set(domains)), domains


# ---- against the database the session migrated -----------------------------------------------
CATALOG = {
    "function": """select 'function' as kind, n.nspname || '.' || p.proname as name,
                          array(select format_type(a.t, null) from unnest(p.proargtypes::oid[]) with ordinality a (t, i)
                                 order by a.i) as arguments
                     from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                    where n.nspname = any(%(schemas)s)""",
    "table": """select 'table' as kind, n.nspname || '.' || c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
                 where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'p')""",
    "view": """select 'view' as kind, n.nspname || '.' || c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
                where n.nspname = any(%(schemas)s) and c.relkind in ('v', 'm')""",
    "policy": """select 'policy' as kind, policyname as name, schemaname || '.' || tablename as on_table from pg_policies
                  where schemaname = any(%(schemas)s)""",
    "trigger": """select 'trigger' as kind, t.tgname as name, n.nspname || '.' || c.relname as on_table
                    from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
                   where not t.tgisinternal and n.nspname = any(%(schemas)s)""",
    "index": """select 'index' as kind, n.nspname || '.' || c.relname as name
                  from pg_index i join pg_class c on c.oid = i.indexrelid join pg_namespace n on n.oid = c.relnamespace
                 where n.nspname = any(%(schemas)s)
                   and not exists (select 1 from pg_constraint k where k.conindid = i.indexrelid)""",
    "type": """select 'type' as kind, n.nspname || '.' || t.typname as name from pg_type t join pg_namespace n on n.oid = t.typnamespace
                where n.nspname = any(%(schemas)s)
                  and (t.typtype in ('e', 'd', 'r')
                       or (t.typtype = 'c' and (select c.relkind from pg_class c where c.oid = t.typrelid) = 'c'))""",
}


def catalog_objects(db) -> set[tuple]:
    db.execute("set local search_path = ''")  # types print schema-qualified, as the files write them
    found = set()
    for query in CATALOG.values():
        for row in db.execute(query, {"schemas": list(SCHEMAS)}):
            values = list(row.values())
            found.add(tuple(tuple(v) if isinstance(v, list) else v for v in values))
    return found


def test_the_database_holds_exactly_what_the_files_create(db):
    created, _ = read(migration_files())
    in_files = {key for key in created if (key[2] if key[0] in ("policy", "trigger") else key[1]).split(".")[0] in SCHEMAS}
    in_database = catalog_objects(db)
    assert len(in_database) > 500
    unread = sorted(map(str, in_database - in_files))
    assert unread == [], "created by a statement the layout test cannot read (write it out):\n" + "\n".join(unread)
    if FIRST_RELEASE_UP_TO is None:  # nothing is dropped before the first release
        assert sorted(map(str, in_files - in_database)) == []


def test_a_fresh_database_is_at_the_newest_migration(db):
    files = migration_files()
    newest = split_version(files[-1])[0]
    version = db.execute("select public.schema_version() as v").fetchone()["v"]
    applied = [r["version"] for r in db.execute("select version from supabase_migrations.schema_migrations order by 1")]
    assert (version, applied) == (newest, [split_version(path)[0] for path in files])
    assert newest >= NEWEST_BEFORE_THE_FOLD


@pytest.mark.parametrize("statement, key", [
    ("create or replace function private.f(p_a uuid, out o text, p_b timestamptz default now(), p_c text[] default '{}')"
     " returns text language sql as $$ select 'a, b' $$",
     ("function", "private.f", ("uuid", "timestamp with time zone", "text[]"))),
    ('create policy "People can read what ""they"" wrote" on public.notes for select using (true)',
     ("policy", 'People can read what "they" wrote', "public.notes")),
    ("create trigger t_x before insert or update of a, b on public.x for each row execute function private.g()",
     ("trigger", "t_x", "public.x")),
    ("create unique index x_idx on public.x (a) where b", ("index", "public.x_idx")),
])
def test_the_reader_reads_a_statement(statement, key):
    assert definitions(statement) == [key]


def test_the_reader_splits_statements_around_quotes_and_comments():
    text = ("-- a comment; with a semicolon\ncreate table public.a (b text default 'x;y');\n"
            "/* c; */ create function private.f() returns int language sql as $body$ select 1; $body$;\n"
            'create policy "it\'s; fine" on public.a for select using (true);')
    assert [definitions(s)[0] for s in statements(text)] == [
        ("table", "public.a"), ("function", "private.f", ()), ("policy", "it's; fine", "public.a")]
