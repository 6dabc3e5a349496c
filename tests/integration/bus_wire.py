"""Just enough of the protobuf wire format to speak postmesh.BusMessage from a test (the proto
has no Python module here): encode the few requests the tests send, decode replies into
{field number: [values]}. Field numbers are those of proto/postmesh.proto."""

from remote_proto import _varint as varint  # one varint encoder for every test codec

VERSION = 1
# BusMessage body fields
SUBMIT, SUBMIT_REPLY, CREDIT, JOB, JOB_RESULT, CONTROL, CONTROL_REPLY = 10, 11, 12, 13, 14, 15, 16
RESOLVE, RESOLVE_REPLY, PING = 17, 18, 19
STATUS = 6             # ControlRequest.Command.STATUS
WORKER_DELIVERY, WORKER_MTA, WORKER_BOUNCER = 1, 2, 3                # WorkerKind
DELIVERED, TEMPFAIL, PERMFAIL, RETURNED = 0, 1, 2, 3                 # RecipientResult.Status
COMMITTED = 0                                                        # SubmitReply.Status
MX, PTR, A, TXT = 0, 1, 2, 3                                         # ResolveRequest.Kind
PERMFAIL_RESOLVE = 2                                                 # ResolveReply.Status


def field_int(num, value):
    return varint(num << 3) + varint(value)


def field_bytes(num, data):
    if isinstance(data, str):
        data = data.encode()
    return varint(num << 3 | 2) + varint(len(data)) + data


def bus_message(request_id, body_field, body):
    return field_int(1, VERSION) + field_int(2, request_id) + field_bytes(body_field, body)


def ping(request_id):
    """Answered by the queue with a Ping of the same request id, after everything it sent the
    peer before: a barrier."""
    return bus_message(request_id, PING, b"")


def control_status(request_id):
    return bus_message(request_id, CONTROL, field_int(1, STATUS))


def submit(request_id, sender, recipient, body):
    """recipient: one address or a list of them (none: the queue refuses it at once)."""
    rcpts = [recipient] if isinstance(recipient, str) else list(recipient)
    inner = field_bytes(1, sender) + b"".join(field_bytes(2, r) for r in rcpts) + field_bytes(3, body) \
        + field_bytes(4, "local")
    return bus_message(request_id, SUBMIT, inner)


def resolve(request_id, name, kind=MX):
    """A ResolveRequest; kind may be any number (one the proto lacks is refused at the edge)."""
    body = (field_int(1, kind) if kind else b"") + (field_bytes(2, name) if name else b"")
    return bus_message(request_id, RESOLVE, body)


def credit(kind, credits, name, jobs_received=None):
    body = field_int(1, kind) + field_int(2, credits) + field_bytes(3, name)
    if jobs_received is not None:
        body += field_int(4, jobs_received)
    return bus_message(0, CREDIT, body)


def job_result(job_id, queue_id, results, epoch=0, kind=0):
    """results: [(index, status, dsn_status, text), ...]; epoch and kind 0 are left out, as
    protobuf leaves out zero values."""
    body = field_int(1, job_id) + field_bytes(2, queue_id)
    for index, status, dsn, text in results:
        rr = field_int(1, index) + field_int(2, status) + field_bytes(3, dsn) + field_bytes(4, text)
        body += field_bytes(3, rr)
    if epoch:
        body += field_int(4, epoch)
    if kind:
        body += field_int(5, kind)
    return bus_message(0, JOB_RESULT, body)


def parse_job(frame_fields):
    """A decoded BusMessage holding a Job -> dict, or None if it holds something else."""
    raw = first(frame_fields, JOB)
    if raw is None:
        return None
    j = decode(raw)
    recipients = []
    for r in j.get(5, []):
        rf = decode(r)
        recipients.append({"index": first(rf, 1, 0), "address": first(rf, 2, b"").decode()})
    return {
        "job_id": first(j, 1, 0), "queue_id": first(j, 2, b"").decode(), "kind": first(j, 3, 0),
        "recipients": recipients, "domain": first(j, 7, b"").decode(), "lease_seconds": first(j, 8, 0),
        "epoch": first(j, 12, 0),
    }


def _reply(frame_fields, body_field):
    """(request_id, status, field 2, field 3) of a reply body: SubmitReply's queue_id and text,
    ResolveReply's dsn_status and text. None if the frame holds another body."""
    raw = first(frame_fields, body_field)
    if raw is None:
        return None
    r = decode(raw)
    return (first(frame_fields, 2, 0), first(r, 1, 0), first(r, 2, b"").decode(), first(r, 3, b"").decode())


def parse_submit_reply(frame_fields):
    """A decoded BusMessage holding a SubmitReply -> (request_id, status, queue_id, text), or None."""
    return _reply(frame_fields, SUBMIT_REPLY)


def parse_resolve_reply(frame_fields):
    """A decoded BusMessage holding a ResolveReply -> (request_id, status, dsn_status, text), or None."""
    return _reply(frame_fields, RESOLVE_REPLY)


def decode(buf):
    """One message level: {field: [int or bytes, ...]}. Raises ValueError on malformed input."""
    fields, i = {}, 0

    def read_varint():
        nonlocal i
        shift = result = 0
        while True:
            if i >= len(buf) or shift > 63:
                raise ValueError("truncated varint")
            b = buf[i]
            i += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result

    while i < len(buf):
        key = read_varint()
        num, wire = key >> 3, key & 7
        if wire == 0:
            value = read_varint()
        elif wire == 2:
            n = read_varint()
            if i + n > len(buf):
                raise ValueError("truncated field")
            value, i = bytes(buf[i:i + n]), i + n
        else:
            raise ValueError(f"unexpected wire type {wire}")
        fields.setdefault(num, []).append(value)
    return fields


def first(fields, num, default=None):
    return fields.get(num, [default])[0]
