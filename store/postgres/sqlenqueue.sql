-- Enqueueing from SQL (docs/sql.md): a Go text/template that
-- sqlenqueue.go renders with the limits of abi/ and store/ and installs
-- on every migration, so the rules here are the Go rules of the binary
-- that installed them. The order of the checks is that of enqueue.Decode,
-- enqueue.Service.Build and store.NewJob.Validate, so that a bad job is
-- refused for the same field over HTTP and here (e2e/sql_test.go runs one
-- corpus through both).
--
-- Errors: SQLSTATE 22023 (invalid value, the field in the error's column
-- name and at the head of the message), 42704 (unknown function), 53400
-- (max_pending quota), 42501 (calling role not mapped to a tenant).

-- _sql_fail raises one of wasmq's errors: the field goes in the error's
-- COLUMN so that a client can read it without parsing the message.
CREATE OR REPLACE FUNCTION _sql_fail(code text, field text, msg text) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    IF field = '' THEN
        RAISE EXCEPTION USING ERRCODE = code, MESSAGE = 'wasmq: ' || msg;
    END IF;
    RAISE EXCEPTION USING ERRCODE = code, COLUMN = field, MESSAGE = 'wasmq: ' || field || ': ' || msg;
END $fn$;

-- _sql_tenant is the tenant of the calling role: the role set with SET
-- ROLE if any, else the session's login role. A SECURITY DEFINER function
-- runs as its owner, so current_user would be wasmq's own role; the role
-- setting cannot be forged (SET ROLE checks membership).
CREATE OR REPLACE FUNCTION _sql_tenant() RETURNS text
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    caller text := current_setting('role');
    t text;
BEGIN
    IF caller IS NULL OR caller IN ('', 'none') THEN
        caller := session_user;
    END IF;
    SELECT r.tenant INTO t FROM sql_roles r WHERE r.role = caller;
    IF t IS NULL THEN
        PERFORM _sql_fail('42501', '', format('role %s is not mapped to a wasmq tenant ([[tenants]] sql_roles in wasmq.toml, then wasmq migrate)', caller));
    END IF;
    RETURN t;
END $fn$;

-- _sql_when reads an eta or expected_at as enqueue.ParseWhen does: an
-- RFC 3339 instant or whole seconds from now.
CREATE OR REPLACE FUNCTION _sql_when(field text, v jsonb, now_ts timestamptz) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    s text;
    n numeric;
    t timestamptz;
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(v) = 'string' THEN
        s := v #>> '{}';
        IF s ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$' THEN
            BEGIN
                t := s::timestamptz;
                RETURN t;
            EXCEPTION WHEN others THEN
                -- a day or month out of range: refused below
            END;
        END IF;
        PERFORM _sql_fail('22023', field, format('%s is not an RFC 3339 instant (e.g. 2026-11-22T10:00:00Z)', v::text));
    END IF;
    IF jsonb_typeof(v) <> 'number' OR v::text !~ '^-?[0-9]+$' OR length(v::text) > 19 THEN
        PERFORM _sql_fail('22023', field, 'must be an RFC 3339 instant or a whole number of seconds from now');
    END IF;
    n := v::text::numeric;
    IF abs(n) > {{.MaxSecondsFromNow}} THEN
        PERFORM _sql_fail('22023', field, format('%s seconds from now is out of range (at most %s)', n, {{.MaxSecondsFromNow}}));
    END IF;
    RETURN now_ts + make_interval(secs => n::double precision);
END $fn$;

-- _sql_channel is abi.ParseChannel: the full name, checked.
CREATE OR REPLACE FUNCTION _sql_channel(field text, c text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $fn$
DECLARE
    parts text[];
BEGIN
    IF c = '' OR c = '{{.Root}}' THEN
        RETURN '{{.Root}}';
    END IF;
    IF left(c, {{len .Root}} + 1) <> '{{.Root}}.' THEN
        c := '{{.Root}}.' || c;
    END IF;
    IF octet_length(c) > {{.MaxChannelLen}} THEN
        PERFORM _sql_fail('22023', field, format('a channel name is at most %s bytes (this one has %s)', {{.MaxChannelLen}}, octet_length(c)));
    END IF;
    parts := string_to_array(c, '.');
    IF cardinality(parts) > {{.MaxChannelDepth}} THEN
        PERFORM _sql_fail('22023', field, format('a channel name has at most %s levels, root included (this one has %s)', {{.MaxChannelDepth}}, cardinality(parts)));
    END IF;
    IF c !~ '^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$' THEN
        PERFORM _sql_fail('22023', field, format('%s: channel names are dot-separated words of letters, digits, _ and -', to_json(c)));
    END IF;
    RETURN c;
END $fn$;

-- _sql_jobs creates the jobs of requests (JSON objects shaped as the body
-- of POST /v1/jobs) for tenant, in the caller's transaction, as
-- store.Core.Insert does: same rows, pending_log, dependencies, count
-- deltas, identity-key lock; the scheduler is woken by a NOTIFY, which
-- PostgreSQL delivers at commit, and never after a rollback.
CREATE OR REPLACE FUNCTION _sql_jobs(p_tenant text, p_reqs jsonb, p_batch boolean) RETURNS uuid[]
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    n int;
    i int;
    k int;
    raw jsonb;
    r jsonb;
    reqs jsonb[] := '{}';
    key text;
    val jsonb;
    lk text;
    pre text;
    now_ts timestamptz := clock_timestamp();
    refs jsonb := '{}';
    graph text := '';
    -- the built jobs, one array per column
    b_uuid text[] := '{}';
    b_func text[] := '{}';
    b_args jsonb[] := '{}';
    b_kwargs jsonb[] := '{}';
    b_ctx jsonb[] := '{}';
    b_user text[] := '{}';
    b_model text[] := '{}';
    b_fstr text[] := '{}';
    b_desc text[] := '{}';
    b_chan text[] := '{}';
    lim_chan int;
    used_chan int;
    b_prio numeric[] := '{}';
    b_eta timestamptz[] := '{}';
    b_exp timestamptz[] := '{}';
    b_maxr numeric[] := '{}';
    b_key text[] := '{}';
    b_deps jsonb[] := '{}';
    -- one job
    fn text;
    v_mod text;
    v_export text;
    reg record;
    fc jsonb;
    v_args jsonb;
    v_kwargs jsonb;
    v_ctx jsonb;
    v_prio numeric;
    v_maxr numeric;
    v_desc text;
    v_chan text;
    v_key text;
    v_eta timestamptz;
    v_exp timestamptz;
    v_deps jsonb;
    v_fstr text;
    v_channel text;
    v_ref text;
    d text;
    parts text[];
    -- inserting
    lim int;
    waiting numeric;
    v_out uuid[] := '{}';
    v_alias jsonb := '{}';
    parents text[];
    p text;
    pstates text[];
    all_done boolean;
    all_finished boolean;
    st text;
    prow record;
    new_seq bigint;
    new_version bigint;
    note_uuid text[] := '{}';
    note_chan text[] := '{}';
    ins_chan text[] := '{}';
    ins_state text[] := '{}';
    vpre text;
BEGIN
    IF p_reqs IS NULL OR jsonb_typeof(p_reqs) <> 'array' THEN
        PERFORM _sql_fail('22023', 'jobs', 'must be a JSON list of jobs');
    END IF;
    n := jsonb_array_length(p_reqs);
    IF n = 0 THEN
        PERFORM _sql_fail('22023', 'jobs', 'a batch needs at least one job');
    END IF;

    -- Decoding (enqueue.Decode): shapes and types of every entry first.
    -- (element by element: p_reqs -> i would detoast the whole list each time)
    FOR raw, i IN SELECT e.value, e.o - 1 FROM jsonb_array_elements(p_reqs) WITH ORDINALITY e(value, o) LOOP
        pre := CASE WHEN p_batch THEN format('jobs[%s].', i) ELSE '' END;
        IF jsonb_typeof(raw) <> 'object' THEN
            PERFORM _sql_fail('22023', CASE WHEN p_batch THEN format('jobs[%s]', i) ELSE '(body)' END,
                format('must be an object, not %s', jsonb_typeof(raw)));
        END IF;
        r := '{}';
        FOR key, val IN SELECT e.key, e.value FROM jsonb_each(raw) e LOOP
            lk := lower(key); -- encoding/json matches field names case-insensitively
            IF jsonb_typeof(val) = 'null' THEN
                CONTINUE; -- null is absent, as over HTTP
            END IF;
            CASE lk
            WHEN 'ref', 'func', 'description', 'channel', 'identity_key' THEN
                IF jsonb_typeof(val) <> 'string' THEN
                    PERFORM _sql_fail('22023', pre || lk, format('must be a string, not %s', jsonb_typeof(val)));
                END IF;
            WHEN 'priority', 'max_retries', 'batch_size' THEN
                IF jsonb_typeof(val) <> 'number' OR val::text !~ '^-?[0-9]+$' OR length(val::text) > 19 THEN
                    PERFORM _sql_fail('22023', pre || lk, format('must be a number (an integer), not %s', val::text));
                END IF;
            WHEN 'depends_on' THEN
                IF jsonb_typeof(val) <> 'array' THEN
                    PERFORM _sql_fail('22023', pre || lk, format('must be a list, not %s', jsonb_typeof(val)));
                END IF;
                IF EXISTS (SELECT 1 FROM jsonb_array_elements(val) x WHERE jsonb_typeof(x) <> 'string') THEN
                    PERFORM _sql_fail('22023', pre || lk, 'must be a list of strings');
                END IF;
            WHEN 'args', 'kwargs', 'context', 'eta', 'expected_at' THEN
                NULL;
            ELSE
                PERFORM _sql_fail('22023', pre || key, 'unknown field');
            END CASE;
            r := r || jsonb_build_object(lk, val);
        END LOOP;
        reqs := array_append(reqs, r);
    END LOOP;

    -- Every job's uuid, and where each ref is first given: a ref names
    -- the first entry that gives it, for the entries after it. A uuid is
    -- a UUIDv7, as the enqueue service makes them (its first 48 bits the
    -- time in milliseconds, then version 7): new jobs land at the end of
    -- the primary key.
    b_uuid := ARRAY(SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
        placing substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6),
        52, 1), 53, 1), 'hex')::uuid::text FROM generate_series(1, n));
    SELECT coalesce(jsonb_object_agg(x.ref, x.idx), '{}') INTO refs FROM (
        SELECT DISTINCT ON (u.r ->> 'ref') u.r ->> 'ref' AS ref, u.o - 1 AS idx
        FROM unnest(reqs) WITH ORDINALITY u(r, o) WHERE coalesce(u.r ->> 'ref', '') <> ''
        ORDER BY u.r ->> 'ref', u.o) x;

    -- Building (enqueue.Service.Build): defaults from the function's
    -- configuration, the request's values checked.
    FOR i IN 0 .. n - 1 LOOP
        r := reqs[i + 1];
        pre := CASE WHEN p_batch THEN format('jobs[%s].', i) ELSE '' END;
        IF NOT p_batch AND coalesce(r ->> 'ref', '') <> '' THEN
            PERFORM _sql_fail('22023', 'ref', 'ref is for entries of a batch (enqueue_batch)');
        END IF;
        fn := coalesce(r ->> 'func', '');
        IF fn = '' THEN
            PERFORM _sql_fail('22023', pre || 'func', 'is required (module.function)');
        END IF;
        v_mod := substring(fn FROM '^(.*)\.[^.]*$');
        v_export := substring(fn FROM '\.([^.]*)$');
        IF coalesce(v_mod, '') = '' OR coalesce(v_export, '') = '' THEN
            PERFORM _sql_fail('22023', pre || 'func', format('func %s must be of the form module.function', to_json(fn)));
        END IF;
        -- the module the tenant sees: its own, else the shared one
        SELECT g.tenant, g.loaded, g.functions INTO reg FROM plugin_registry g
            WHERE g.module = v_mod AND g.tenant IN (p_tenant, '')
            ORDER BY g.tenant = '', NOT g.loaded, g.published DESC LIMIT 1;
        IF NOT FOUND THEN
            PERFORM _sql_fail('42704', pre || 'func', format('no plugin module %s', to_json(v_mod)));
        END IF;
        IF NOT reg.loaded THEN
            PERFORM _sql_fail('42704', pre || 'func', format('plugin module %s failed to load', to_json(v_mod)));
        END IF;
        IF NOT reg.functions ? v_export THEN
            PERFORM _sql_fail('42704', pre || 'func', format('plugin module %s has no function %s (exports: %s)', to_json(v_mod), to_json(v_export),
                (SELECT string_agg(x, ', ' ORDER BY x COLLATE "C") FROM jsonb_object_keys(reg.functions) x)));
        END IF;
        fc := reg.functions -> v_export;

        v_args := coalesce(r -> 'args', '[]');
        IF jsonb_typeof(v_args) <> 'array' THEN
            PERFORM _sql_fail('22023', pre || 'args', 'must be a JSON list');
        END IF;
        v_kwargs := coalesce(r -> 'kwargs', '{}');
        IF jsonb_typeof(v_kwargs) <> 'object' THEN
            PERFORM _sql_fail('22023', pre || 'kwargs', 'must be a JSON object');
        END IF;
        v_ctx := coalesce(r -> 'context', '{}');
        IF jsonb_typeof(v_ctx) <> 'object' THEN
            PERFORM _sql_fail('22023', pre || 'context', 'must be a JSON object');
        END IF;

        v_prio := {{.DefaultPriority}};
        IF r ? 'priority' THEN
            v_prio := (r ->> 'priority')::numeric;
            IF v_prio < 0 THEN
                PERFORM _sql_fail('22023', pre || 'priority', 'must be an integer from 0 to {{.MaxPriority}}');
            END IF;
        END IF;
        v_maxr := {{.DefaultMaxRetries}};
        IF r ? 'max_retries' THEN
            v_maxr := (r ->> 'max_retries')::numeric;
            IF v_maxr < 0 THEN
                PERFORM _sql_fail('22023', pre || 'max_retries', 'must be an integer from 0 to {{.MaxMaxRetries}}');
            END IF;
        ELSIF jsonb_typeof(fc -> 'max_retries') = 'number' THEN
            v_maxr := (fc ->> 'max_retries')::numeric;
        END IF;
        v_desc := fn;
        IF coalesce(fc ->> 'description', '') <> '' THEN
            v_desc := fc ->> 'description';
        END IF;
        IF r ? 'description' THEN
            v_desc := r ->> 'description';
            IF char_length(v_desc) > {{.MaxDescription}} THEN
                PERFORM _sql_fail('22023', pre || 'description', format('at most %s characters (this one has %s)', {{.MaxDescription}}, char_length(v_desc)));
            END IF;
        END IF;
        v_chan := _sql_channel(pre || 'channel', coalesce(r ->> 'channel', fc ->> 'channel', ''));
        v_key := coalesce(r ->> 'identity_key', '');
        IF octet_length(v_key) > {{.MaxIdentityKey}} THEN
            PERFORM _sql_fail('22023', pre || 'identity_key', format('at most {{.MaxIdentityKey}} bytes (this one has %s)', octet_length(v_key)));
        END IF;
        v_eta := _sql_when(pre || 'eta', r -> 'eta', now_ts);
        v_exp := _sql_when(pre || 'expected_at', r -> 'expected_at', now_ts);
        v_deps := '[]';
        k := 0;
        FOR d IN SELECT x FROM jsonb_array_elements_text(coalesce(r -> 'depends_on', '[]')) x LOOP
            IF refs ? d AND (refs ->> d)::int < i THEN
                d := b_uuid[(refs ->> d)::int + 1];
            ELSIF d !~* '^(urn:uuid:)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                AND d !~* '^\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}$'
                AND d !~* '^[0-9a-f]{32}$' THEN
                PERFORM _sql_fail('22023', pre || format('depends_on[%s]', k),
                    format('%s is neither a job uuid nor the ref of an earlier job of this batch', to_json(d)));
            END IF;
            v_deps := v_deps || to_jsonb(d);
            k := k + 1;
        END LOOP;
        IF v_ctx ? 'records' AND jsonb_typeof(v_ctx -> 'records') NOT IN ('array', 'null') THEN
            PERFORM _sql_fail('22023', pre || 'context.records', 'must be a list of record ids');
        END IF;
        IF r ? 'batch_size' THEN
            IF (r ->> 'batch_size')::numeric < 1 THEN
                PERFORM _sql_fail('22023', pre || 'batch_size', 'must be an integer >= 1');
            END IF;
            IF jsonb_typeof(v_ctx -> 'records') = 'array'
                AND jsonb_array_length(v_ctx -> 'records') > (r ->> 'batch_size')::numeric THEN
                PERFORM _sql_fail('22023', pre || 'batch_size', 'splitting context.records is not done in SQL: enqueue one job per part');
            END IF;
        END IF;
        -- func_string, as enqueue.FuncString: mail.send(42, "x", lang="fr")
        SELECT fn || '(' || coalesce(string_agg(x, ', ' ORDER BY o), '') || ')' INTO v_fstr FROM (
            SELECT a.v::text AS x, a.o AS o FROM jsonb_array_elements(v_args) WITH ORDINALITY a(v, o)
            UNION ALL
            SELECT kw.key || '=' || kw.value::text, 1e18 + row_number() OVER (ORDER BY kw.key COLLATE "C")
            FROM jsonb_each(v_kwargs) kw) parts_;
        IF octet_length(v_fstr) > 500 THEN
            k := 497;
            WHILE octet_length(left(v_fstr, k)) > 497 LOOP
                k := k - 1;
            END LOOP;
            v_fstr := left(v_fstr, k) || '...';
        END IF;

        v_ref := coalesce(r ->> 'ref', '');
        IF v_ref <> '' AND (refs ->> v_ref)::int <> i THEN
            PERFORM _sql_fail('22023', pre || 'ref', format('ref %s is used twice', to_json(v_ref)));
        END IF;
        IF i + 1 > {{.MaxBatch}} THEN
            PERFORM _sql_fail('22023', 'jobs', 'at most {{.MaxBatch}} jobs per request');
        END IF;
        IF p_batch AND jsonb_array_length(v_deps) > 0 THEN
            graph := 'yes';
        END IF;
        b_func := array_append(b_func, fn);
        b_args := array_append(b_args, v_args);
        b_kwargs := array_append(b_kwargs, v_kwargs);
        b_ctx := array_append(b_ctx, v_ctx);
        b_user := array_append(b_user, CASE jsonb_typeof(v_ctx -> 'user') WHEN 'string' THEN v_ctx ->> 'user' WHEN 'null' THEN '' ELSE coalesce((v_ctx -> 'user')::text, '') END);
        b_model := array_append(b_model, CASE jsonb_typeof(v_ctx -> 'model') WHEN 'string' THEN v_ctx ->> 'model' WHEN 'null' THEN '' ELSE coalesce((v_ctx -> 'model')::text, '') END);
        b_fstr := array_append(b_fstr, v_fstr);
        b_desc := array_append(b_desc, v_desc);
        b_chan := array_append(b_chan, v_chan);
        b_prio := array_append(b_prio, v_prio);
        b_eta := array_append(b_eta, v_eta);
        b_exp := array_append(b_exp, v_exp);
        b_maxr := array_append(b_maxr, v_maxr);
        b_key := array_append(b_key, v_key);
        b_deps := array_append(b_deps, v_deps);
    END LOOP;
    IF graph <> '' THEN
        graph := encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
            placing substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6),
            52, 1), 53, 1), 'hex')::uuid::text;
    END IF;

    -- What every store keeps (store.NewJob.Validate), named by the entry
    -- of a batch as enqueue.Service.Build names it (an entry is one job
    -- here: batch_size does not split in SQL).
    FOR i IN 1 .. n LOOP
        vpre := CASE WHEN p_batch THEN format('jobs[%s].', i - 1) ELSE '' END;
        IF b_prio[i] > {{.MaxPriority}} THEN
            PERFORM _sql_fail('22023', vpre || 'priority', 'must be an integer from 0 to {{.MaxPriority}}');
        END IF;
        IF b_maxr[i] > {{.MaxMaxRetries}} THEN
            PERFORM _sql_fail('22023', vpre || 'max_retries', 'must be an integer from 0 to {{.MaxMaxRetries}}');
        END IF;
        IF b_eta[i] < '{{.MinDate}}' OR b_eta[i] > '{{.MaxDate}}' THEN
            PERFORM _sql_fail('22023', vpre || 'eta', format('%s is out of range (%s to %s)', b_eta[i], {{.MinYear}}, {{.MaxYear}}));
        END IF;
        IF b_exp[i] < '{{.MinDate}}' OR b_exp[i] > '{{.MaxDate}}' THEN
            PERFORM _sql_fail('22023', vpre || 'expected_at', format('%s is out of range (%s to %s)', b_exp[i], {{.MinYear}}, {{.MaxYear}}));
        END IF;
    END LOOP;

    -- max_pending, exact between SQL callers and the store's own inserts
    -- (store.Core.InsertUnder takes the same lock): one enqueue at a time
    -- per tenant under a quota, until the caller's transaction ends.
    SELECT l.max_pending, l.max_channels INTO lim, lim_chan FROM sql_tenant_limits l WHERE l.tenant = p_tenant;
    IF coalesce(lim, 0) > 0 OR coalesce(lim_chan, 0) > 0 THEN
        PERFORM pg_advisory_xact_lock({{.QuotaLockClass}}, hashtext(p_tenant));
    END IF;
    IF coalesce(lim, 0) > 0 THEN
        SELECT coalesce(sum(c.n), 0) INTO waiting FROM (
            SELECT tenant, state, n FROM job_counts UNION ALL SELECT tenant, state, n FROM job_count_deltas) c
            WHERE c.tenant = p_tenant AND c.state IN ('wait_dependencies', 'pending', 'enqueued');
        IF waiting + n > lim THEN
            PERFORM _sql_fail('53400', '', format('tenant %s has %s jobs waiting; its quota is %s', p_tenant, waiting, lim));
        END IF;
    END IF;
    -- max_channels (store.Core's withinQuota): channels holding the
    -- tenant's jobs in any state, with the batch's new ones.
    IF coalesce(lim_chan, 0) > 0 THEN
        SELECT count(*) INTO used_chan FROM (
            SELECT c.channel FROM (
                SELECT channel, n FROM job_counts WHERE tenant = p_tenant
                UNION ALL SELECT channel, n FROM job_count_deltas WHERE tenant = p_tenant) c
            GROUP BY c.channel HAVING sum(c.n) > 0
            UNION SELECT unnest(b_chan)) u;
        IF used_chan > lim_chan THEN
            PERFORM _sql_fail('53400', '', format('tenant %s would hold jobs in %s channels; its quota is %s (channels hold jobs until they are vacuumed)', p_tenant, used_chan, lim_chan));
        END IF;
    END IF;

    -- Inserting, one job after the other (store.insertOneByOne): keys and
    -- dependencies see the jobs stored before them.
    FOR i IN 1 .. n LOOP
        IF b_key[i] <> '' THEN
            PERFORM pg_advisory_xact_lock({{.IdentityLockClass}}, hashtext(p_tenant || chr(31) || b_key[i]));
            SELECT j.uuid INTO p FROM jobs j WHERE j.tenant = p_tenant AND j.identity_key = b_key[i]
                AND j.identity_key <> '' AND j.state IN ('wait_dependencies', 'pending', 'enqueued')
                ORDER BY j.date_created, j.seq LIMIT 1;
            IF FOUND THEN
                v_out := array_append(v_out, p::uuid);
                v_alias := v_alias || jsonb_build_object(b_uuid[i], p);
                CONTINUE;
            END IF;
        END IF;
        parents := '{}';
        FOR p IN SELECT x FROM jsonb_array_elements_text(b_deps[i]) x LOOP
            IF v_alias ? p THEN
                p := v_alias ->> p;
            END IF;
            IF p = b_uuid[i] THEN
                PERFORM _sql_fail('22023', 'depends_on', 'a job cannot depend on itself');
            END IF;
            parents := array_append(parents, p);
        END LOOP;
        pstates := '{}';
        FOREACH p IN ARRAY parents LOOP
            SELECT j.tenant, j.state INTO prow FROM jobs j WHERE j.uuid = p;
            IF NOT FOUND OR prow.tenant <> p_tenant THEN -- another tenant's job does not exist for this one
                PERFORM _sql_fail('22023', 'depends_on', format('job %s does not exist', p));
            END IF;
            pstates := array_append(pstates, prow.state);
        END LOOP;
        -- store.initialState
        all_done := true;
        all_finished := true;
        FOREACH st IN ARRAY pstates LOOP
            IF st = 'cancelled' THEN
                all_done := false;
            ELSIF st <> 'done' THEN
                all_done := false;
                all_finished := false;
            END IF;
        END LOOP;
        st := CASE WHEN all_done THEN 'pending' WHEN all_finished THEN 'cancelled' ELSE 'wait_dependencies' END;
        INSERT INTO jobs (uuid, tenant, func, args, kwargs, context, user_id, model_name, func_string, description,
            channel, priority, eta, expected_at, max_retries, identity_key, graph_uuid, state, date_cancelled, date_created)
        VALUES (b_uuid[i], p_tenant, b_func[i], b_args[i]::json, b_kwargs[i]::json, b_ctx[i]::json, b_user[i], b_model[i],
            b_fstr[i], b_desc[i], b_chan[i], b_prio[i]::int, b_eta[i], b_exp[i], b_maxr[i]::int, b_key[i], graph, st,
            CASE WHEN st = 'cancelled' THEN now_ts END, now_ts)
        RETURNING seq, version INTO new_seq, new_version;
        IF st = 'pending' THEN
            INSERT INTO pending_log (version, uuid, tenant, channel, priority, eta, expected_at, date_created, seq)
            VALUES (new_version, b_uuid[i], p_tenant, b_chan[i], b_prio[i]::int, b_eta[i], b_exp[i], now_ts, new_seq);
            note_uuid := array_append(note_uuid, b_uuid[i]);
            note_chan := array_append(note_chan, b_chan[i]);
        END IF;
        IF cardinality(parents) > 0 THEN
            INSERT INTO job_dependencies (child, parent)
            SELECT b_uuid[i], x FROM unnest(parents) WITH ORDINALITY AS u(x, o) ORDER BY o ON CONFLICT DO NOTHING;
        END IF;
        ins_chan := array_append(ins_chan, b_chan[i]);
        ins_state := array_append(ins_state, st);
        v_out := array_append(v_out, b_uuid[i]::uuid);
    END LOOP;

    -- The counts, one row per channel and state, as the hot statements
    -- write theirs (countedCTE).
    INSERT INTO job_count_deltas (tenant, channel, state, n)
    SELECT p_tenant, c.ch, c.st, count(*) FROM unnest(ins_chan, ins_state) AS c(ch, st) GROUP BY c.ch, c.st;

    -- The scheduler's wake-up, as store.Events: the pending jobs by name,
    -- {{.UUIDsPerNotify}} to a notification; delivered at commit only.
    -- The channel's name is a secret of wasmq's role (migration 15).
    SELECT name INTO v_channel FROM event_channel;
    FOR k IN 0 .. (cardinality(note_uuid) - 1) / {{.UUIDsPerNotify}} LOOP
        EXIT WHEN cardinality(note_uuid) = 0;
        SELECT array_agg(DISTINCT c) INTO parts FROM unnest(note_chan[k * {{.UUIDsPerNotify}} + 1 : (k + 1) * {{.UUIDsPerNotify}}]) c;
        v_fstr := json_strip_nulls(json_build_object('Kind', 'pending',
            'Channels', CASE WHEN cardinality(parts) <= 50 THEN to_json(parts) END,
            'UUIDs', to_json(note_uuid[k * {{.UUIDsPerNotify}} + 1 : (k + 1) * {{.UUIDsPerNotify}}])))::text;
        IF octet_length(v_fstr) > 7900 THEN
            -- long channel names: "some channels" (a NOTIFY holds 8,000 bytes)
            v_fstr := json_build_object('Kind', 'pending',
                'UUIDs', to_json(note_uuid[k * {{.UUIDsPerNotify}} + 1 : (k + 1) * {{.UUIDsPerNotify}}]))::text;
        END IF;
        PERFORM pg_notify(v_channel, v_fstr);
    END LOOP;
    RETURN v_out;
END $fn$;

-- enqueue creates one job in the caller's transaction and returns its
-- uuid (the existing job's, when its identity key deduplicates it).
CREATE OR REPLACE FUNCTION enqueue(func text, args jsonb DEFAULT '[]', kwargs jsonb DEFAULT '{}', options jsonb DEFAULT '{}')
RETURNS uuid LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, {{.Schema}}, pg_temp AS $fn$
DECLARE
    req jsonb;
    key text;
BEGIN
    req := coalesce(options, '{}');
    IF jsonb_typeof(req) <> 'object' THEN
        PERFORM _sql_fail('22023', 'options', 'must be a JSON object');
    END IF;
    FOR key IN SELECT jsonb_object_keys(req) LOOP
        IF lower(key) IN ('func', 'args', 'kwargs') THEN
            PERFORM _sql_fail('22023', key, 'is a parameter of enqueue, not an option');
        END IF;
    END LOOP;
    req := req || jsonb_build_object('func', enqueue.func);
    IF enqueue.args IS NOT NULL THEN
        req := req || jsonb_build_object('args', enqueue.args);
    END IF;
    IF enqueue.kwargs IS NOT NULL THEN
        req := req || jsonb_build_object('kwargs', enqueue.kwargs);
    END IF;
    RETURN (_sql_jobs(_sql_tenant(), jsonb_build_array(req), false))[1];
END $fn$;

-- enqueue_batch creates every job of a JSON list of POST /v1/jobs bodies
-- (with ref and depends_on on refs), or none; returns their uuids in order.
CREATE OR REPLACE FUNCTION enqueue_batch(jobs jsonb) RETURNS uuid[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, {{.Schema}}, pg_temp AS $fn$
BEGIN
    RETURN _sql_jobs(_sql_tenant(), enqueue_batch.jobs, true);
END $fn$;

-- functions lists the functions the calling role's tenant may enqueue:
-- its own modules' and the shared ones it does not shadow.
CREATE OR REPLACE FUNCTION functions() RETURNS TABLE (func text, shared boolean, channel text, max_retries integer, description text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, {{.Schema}}, pg_temp AS $fn$
DECLARE
    t text := _sql_tenant();
BEGIN
    RETURN QUERY
    SELECT DISTINCT ON (g.module, f.key) (g.module || '.' || f.key)::text, g.tenant = '', coalesce(f.value ->> 'channel', ''),
        (f.value ->> 'max_retries')::int, coalesce(f.value ->> 'description', '')
    FROM plugin_registry g, jsonb_each(g.functions) f
    WHERE g.loaded AND (g.tenant = t OR (g.tenant = '' AND NOT EXISTS (
        SELECT 1 FROM plugin_registry o WHERE o.module = g.module AND o.tenant = t)))
    ORDER BY g.module, f.key, g.published DESC;
END $fn$;

REVOKE ALL ON FUNCTION _sql_fail(text, text, text), _sql_tenant(), _sql_when(text, jsonb, timestamptz),
    _sql_channel(text, text), _sql_jobs(text, jsonb, boolean), enqueue(text, jsonb, jsonb, jsonb),
    enqueue_batch(jsonb), functions() FROM PUBLIC;
