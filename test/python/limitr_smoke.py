"""A Python client of limitr-sidecar, from stubs generated out of proto/ with grpc_tools.protoc.

Usage: python3 limitr_smoke.py STUBS_DIR HOST:PORT
Calls Allow, Record, GetMeters and WatchEvents on a fresh customer, then Record and Settle with
amount 0, and prints what it saw as one JSON object on stdout (the test compares it with exact
values).
"""
import json
import sys

sys.path.insert(0, sys.argv[1])

import grpc  # noqa: E402
from limitr.v1 import common_pb2, decision_pb2, decision_pb2_grpc, events_pb2  # noqa: E402

CUSTOMER = "py_user"


def meter(m):
    return {
        "entitlement": m.entitlement,
        "owner": m.owner,
        "unit": m.unit,
        "mode": common_pb2.LimitMode.Name(m.mode),
        "value": m.value,
        "limit": m.limit,
        "remaining": m.remaining,
        "overage": m.overage,
        "has_next_reset": m.HasField("next_reset"),
    }


def decision(r):
    return {"allowed": r.allowed, "reason": common_pb2.Reason.Name(r.reason), "plan": r.plan, "items": [meter(m) for m in r.items]}


def main():
    channel = grpc.insecure_channel(sys.argv[2])
    grpc.channel_ready_future(channel).result(timeout=20)
    stub = decision_pb2_grpc.DecisionServiceStub(channel)
    out = {}

    def item(entitlement, amount, unit=""):
        return common_pb2.UsageItem(entitlement=entitlement, amount=amount, unit=unit)

    out["allow"] = decision(stub.Allow(decision_pb2.AllowRequest(customer_id=CUSTOMER, items=[item("gpt_tokens", 500)], idempotency_key="py-allow-1"), timeout=10))
    # The same key again: the first answer, counted once.
    out["allow_again"] = decision(stub.Allow(decision_pb2.AllowRequest(customer_id=CUSTOMER, items=[item("gpt_tokens", 500)], idempotency_key="py-allow-1"), timeout=10))
    denied = stub.Allow(decision_pb2.AllowRequest(customer_id=CUSTOMER, items=[item("claude_tokens", 1), item("gpt_tokens", 1501)]), timeout=10)
    out["denied"] = dict(decision(denied), denied_item=denied.denied_item)
    out["record"] = decision(stub.Record(decision_pb2.RecordRequest(customer_id=CUSTOMER, items=[item("gpt_tokens", 1700)], attributes={"model": "gpt-4o"}), timeout=10))
    out["meters"] = [meter(m) for m in stub.GetMeters(decision_pb2.GetMetersRequest(customer_id=CUSTOMER, entitlements=["gpt_tokens", "claude_tokens"]), timeout=10).meters]

    try:
        stub.Allow(decision_pb2.AllowRequest(customer_id="", items=[item("gpt_tokens", 1)]), timeout=10)
        out["error"] = None
    except grpc.RpcError as e:
        out["error"] = {"code": e.code().name, "details": e.details()}

    events = []
    stream = stub.WatchEvents(
        decision_pb2.WatchEventsRequest(
            from_sequence=1,
            customer_id=CUSTOMER,
            types=[events_pb2.EVENT_TYPE_METER_CHANGED, events_pb2.EVENT_TYPE_METER_OVERAGE, events_pb2.EVENT_TYPE_METER_LIMIT],
        ),
        timeout=20,
    )
    for msg in stream:
        e = msg.event
        events.append({
            "sequence": e.sequence,
            "type": events_pb2.EventType.Name(e.type),
            "entitlement": e.meter.entitlement,
            "old_value": e.meter.old_value,
            "new_value": e.meter.new_value,
            "diff": e.meter.diff,
            "overage": e.meter.overage,
            "overage_price": e.meter.overage_price,
            "attributes": dict(e.meter.attributes),
            "idempotency_key": e.meter.idempotency_key,
        })
        if len(events) == 3:
            stream.cancel()
            break
    out["events"] = events

    # Zero amounts, which only stubs with proto3 `optional` presence (protoc >= 3.15) send: stubs
    # generated with the label stripped leave amount=0 off the wire, which means "absent".
    out["record_zero"] = stub.Record(decision_pb2.RecordRequest(customer_id="py_zero", items=[item("gpt_tokens", 0)]), timeout=10).items[0].value
    held = stub.Reserve(decision_pb2.ReserveRequest(customer_id="py_zero_settle", items=[item("gpt_tokens", 100)]), timeout=10)
    settled = stub.Settle(decision_pb2.SettleRequest(reservation_id=held.reservation_id, actual=[item("gpt_tokens", 0)]), timeout=10)
    out["settle_zero"] = settled.items[0].value
    channel.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
