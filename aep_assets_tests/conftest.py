"""The pipeline's tests use the sandbox's fixtures (a real sandbox over HTTP, a client for it, extra sandboxes,
moto's S3 server): the pipeline meets the sandbox as a user's does, through the process it starts."""

from aep_sandbox_tests.conftest import (  # noqa: F401 - fixtures, found by name
    TEST_OWNER,
    _free_port,
    client,
    client_for,
    make_sandbox,
    moto_s3,
    replace_rows,
    s3_env,
    sandbox,
    wait_for_http,
    wait_until,
)
