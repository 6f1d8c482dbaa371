"""What a person can fix comes out as one sentence and exit code 1, never a stack trace."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.markup import escape
from typer.core import TyperGroup

from tickflow.cli.output import console
from tickflow.errors import TickflowError
from tickflow.settings import Settings, explain_invalid
from tickflow.stack import supervisor

# What a client raises when it reaches no server: librdkafka's codes, and the thrift transports' errors.
KAFKA_UNREACHABLE = ("_TRANSPORT", "_ALL_BROKERS_DOWN", "_TIMED_OUT", "_RESOLVE")


def _thrift_unreachable() -> tuple[type[BaseException], ...]:
    """pyhive's thrift and happybase's thriftpy2 each have their own TTransportException."""
    from thrift.transport.TTransport import TTransportException as HiveTransportError
    from thriftpy2.transport import TTransportException as HBaseTransportError

    return HiveTransportError, HBaseTransportError


@contextmanager
def speaking_errors() -> Iterator[None]:
    """A TickflowError, an invalid TICKFLOW_* variable, a service that does not answer: one sentence and exit
    code 1. Anything else is a bug and keeps its trace."""
    try:
        yield
    except (typer.Exit, typer.Abort):  # a command's own exit, whatever error it handled on the way
        raise
    except TickflowError as error:
        fail(str(error))
    except (ValidationError, SettingsError) as error:
        if (sentence := explain_invalid(error)) is None:
            raise
        fail(sentence)
    except Exception as error:
        if (sentence := _unreachable(error)) is None:
            raise
        fail(sentence)


def fail(sentence: str) -> NoReturn:
    # One line whatever the message carries (a driver's multi-line error), and its brackets are not markup.
    console.print(f"[bold red]error:[/] {escape(' '.join(sentence.split()))}")
    raise typer.Exit(1)


def _unreachable(error: BaseException) -> str | None:
    """One sentence for a client that reached no service (the error or one of its causes), naming the service
    where the error tells its address; None when the error is something else."""
    import httpx
    from confluent_kafka import KafkaException

    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, httpx.TransportError) and (url := _url(cause)):
            return _down(url.host, url.port, type(cause).__name__)
        if isinstance(cause, KafkaException) and cause.args and cause.args[0].name() in KAFKA_UNREACHABLE:
            settings = Settings()
            return _down(settings.kafka_hosts[0], settings.ports.kafka, cause.args[0].str())
        if isinstance(cause, (httpx.TransportError, ConnectionError, TimeoutError, *_thrift_unreachable())):
            return (
                f"A service did not answer ({type(cause).__name__}: {cause}): `tickflow stack status` shows which "
                "is down, `tickflow stack up` starts it."
            )
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
    return None


def _url(error: Any) -> Any:
    try:
        return error.request.url
    except RuntimeError:  # an httpx error raised without its request
        return None


def _down(host: str, port: int | None, reason: str) -> str:
    """The service of the stack at this address did not answer."""
    settings = Settings()
    owners = [s.name for s in supervisor(settings).services.values() if host == s.host and port in s.ports]
    if not owners:
        return (
            f"Nothing answered at {host}:{port} ({reason}): check the address, or start the stack with "
            "`tickflow stack up`."
        )
    return f"{owners[0]} at {host}:{port} did not answer ({reason}): start it with `tickflow stack up {owners[0]}`."


def require(settings: Settings, *services: str) -> None:
    """Fail at once, naming the service, when one a command needs does not listen: its clients would retry for
    seconds (librdkafka, the registry's client) or start Spark first, and then say less."""
    supervisor(settings).require(services)


class SpeakingGroup(TyperGroup):
    """The ``tickflow`` command: every subcommand runs inside :func:`speaking_errors`."""

    def invoke(self, ctx: Any) -> Any:
        with speaking_errors():
            return super().invoke(ctx)
