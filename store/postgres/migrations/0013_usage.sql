-- What attempts used (abi.Usage): the last attempt's on the job row, each
-- recorded attempt's on its row, written by the batched completion.
ALTER TABLE jobs ADD COLUMN usage json;
ALTER TABLE job_attempts ADD COLUMN usage json;

-- The usage aggregate, per tenant, function and minute, which job vacuum
-- does not touch: GET /v1/usage reads it by tenant and minute range.
CREATE TABLE usage_minutes (
    tenant         text COLLATE "C" NOT NULL,
    minute         timestamptz      NOT NULL,
    func           text COLLATE "C" NOT NULL,
    attempts       bigint           NOT NULL DEFAULT 0,
    fuel           bigint           NOT NULL DEFAULT 0,
    wall_ms        bigint           NOT NULL DEFAULT 0,
    peak_memory    bigint           NOT NULL DEFAULT 0,
    host_calls     bigint           NOT NULL DEFAULT 0,
    http_requests  bigint           NOT NULL DEFAULT 0,
    http_bytes_out bigint           NOT NULL DEFAULT 0,
    http_bytes_in  bigint           NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, minute, func)
);
-- An admin's query spans every tenant.
CREATE INDEX usage_minutes_minute ON usage_minutes (minute);
