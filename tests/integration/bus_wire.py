"""Just enough of the protobuf wire format to speak postmesh.BusMessage from a test (the proto
has no Python module here): encode the few requests the tests send, decode replies into
{field number: [values]}. Field numbers are those of proto/postmesh.proto."""

from remote_proto import _varint as varint  # one varint encoder for every test codec

VERSION = 1
# BusMessage body fields
SUBMIT, SUBMIT_REPLY, CREDIT, JOB, CONTROL, CONTROL_REPLY = 10, 11, 12, 13, 15, 16
STATUS = 6             # ControlRequest.Command.STATUS
WORKER_DELIVERY = 1    # WorkerKind


def field_int(num, value):
    return varint(num << 3) + varint(value)


def field_bytes(num, data):
    if isinstance(data, str):
        data = data.encode()
    return varint(num << 3 | 2) + varint(len(data)) + data


def bus_message(request_id, body_field, body):
    return field_int(1, VERSION) + field_int(2, request_id) + field_bytes(body_field, body)


def control_status(request_id):
    return bus_message(request_id, CONTROL, field_int(1, STATUS))


def submit(request_id, sender, recipient, body):
    inner = field_bytes(1, sender) + field_bytes(2, recipient) + field_bytes(3, body) + field_bytes(4, "local")
    return bus_message(request_id, SUBMIT, inner)


def credit(kind, credits, name):
    return bus_message(0, CREDIT, field_int(1, kind) + field_int(2, credits) + field_bytes(3, name))


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
