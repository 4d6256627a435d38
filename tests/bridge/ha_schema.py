"""Home Assistant MQTT discovery payload validator, written from Home Assistant's documented
rules (MQTT discovery, the sensor/binary_sensor/switch/number/select MQTT platforms, and the
sensor device class / unit / state class tables). Used by the bridge's integration tests to
check what bic-mqtt-bridge publishes against what Home Assistant accepts, not against the
bridge's own expectations.

validate(topic, payload_text) -> list of problems (empty when valid).
validate_set(messages) -> problems across a set ({topic: payload}): unique ids, no via_device.
"""

import json
import re

# Abbreviations Home Assistant expands in discovery payloads (the subset of its table that
# applies to the platforms checked here, plus common ones so a typo is still caught).
ABBREVIATIONS = {
    "act_t": "action_topic", "atype": "automation_type", "aux_cmd_t": "aux_command_topic",
    "avty": "availability", "avty_mode": "availability_mode", "avty_t": "availability_topic",
    "avty_tpl": "availability_template", "cmd_t": "command_topic",
    "cmd_tpl": "command_template", "dev_cla": "device_class", "en": "enabled_by_default",
    "ent_cat": "entity_category", "ent_pic": "entity_picture", "exp_aft": "expire_after",
    "frc_upd": "force_update", "ic": "icon", "json_attr_t": "json_attributes_topic",
    "json_attr_tpl": "json_attributes_template", "max": "max", "min": "min",
    "mode": "mode", "name": "name", "obj_id": "object_id", "off_dly": "off_delay",
    "opt": "optimistic", "ops": "options", "pl": "payload", "pl_avail": "payload_available",
    "pl_not_avail": "payload_not_available", "pl_off": "payload_off", "pl_on": "payload_on",
    "pl_rst": "payload_reset", "qos": "qos", "ret": "retain", "stat_cla": "state_class",
    "stat_off": "state_off", "stat_on": "state_on", "stat_t": "state_topic",
    "stat_tpl": "state_template", "step": "step", "sug_dsp_prc": "suggested_display_precision",
    "t": "topic", "uniq_id": "unique_id", "unit_of_meas": "unit_of_measurement",
    "val_tpl": "value_template", "lrst_t": "last_reset_topic",
    "lrst_val_tpl": "last_reset_value_template", "e": "encoding", "dev": "device",
    "o": "origin", "pl_prs": "payload_press", "p": "platform", "def_ent_id": "default_entity_id",
}
DEVICE_ABBREVIATIONS = {
    "cns": "connections", "ids": "identifiers", "name": "name", "mf": "manufacturer",
    "mdl": "model", "mdl_id": "model_id", "hw": "hw_version", "sw": "sw_version",
    "sa": "suggested_area", "sn": "serial_number", "cu": "configuration_url",
    "via_device": "via_device",
}
ORIGIN_ABBREVIATIONS = {"name": "name", "sw": "sw_version", "url": "support_url"}

COMMON_KEYS = {
    "availability", "availability_mode", "availability_topic", "availability_template",
    "payload_available", "payload_not_available", "device", "origin", "enabled_by_default",
    "entity_category", "entity_picture", "icon", "json_attributes_topic",
    "json_attributes_template", "name", "object_id", "default_entity_id", "unique_id", "qos",
    "encoding", "platform",
}
PLATFORM_KEYS = {
    "sensor": {"state_topic", "value_template", "device_class", "state_class",
               "unit_of_measurement", "expire_after", "force_update", "last_reset_value_template",
               "suggested_display_precision", "options"},
    "binary_sensor": {"state_topic", "value_template", "device_class", "expire_after",
                      "force_update", "off_delay", "payload_on", "payload_off"},
    "switch": {"command_topic", "state_topic", "value_template", "device_class", "optimistic",
               "payload_on", "payload_off", "state_on", "state_off", "retain",
               "command_template"},
    "number": {"command_topic", "command_template", "state_topic", "value_template",
               "device_class", "min", "max", "step", "mode", "optimistic", "payload_reset",
               "retain", "unit_of_measurement"},
    "select": {"command_topic", "command_template", "state_topic", "value_template", "options",
               "optimistic", "retain"},
}
REQUIRED = {
    "sensor": {"state_topic"},
    "binary_sensor": {"state_topic"},
    "switch": {"command_topic"},
    "number": {"command_topic"},
    "select": {"command_topic", "options"},
}

# Sensor (and number) device classes with the units Home Assistant accepts for them
# (None = no unit). Classes not listed here are unknown.
SENSOR_UNITS = {
    "apparent_power": {"VA", "mVA", "kVA"},
    "battery": {"%"},
    "current": {"A", "mA"},
    "data_rate": None, "data_size": None,
    "duration": {"d", "h", "min", "s", "ms", "µs"},
    "energy": {"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh", "cal", "kcal",
               "Mcal", "Gcal"},
    "enum": set(),
    "frequency": {"Hz", "kHz", "MHz", "GHz"},
    "humidity": {"%"},
    "power": {"mW", "W", "kW", "MW", "GW", "TW", "BTU/h"},
    "power_factor": {"%", None},
    "reactive_power": {"var", "mvar", "kvar"},
    "temperature": {"°C", "°F", "K"},
    "timestamp": set(),
    "voltage": {"V", "mV", "µV", "kV", "MV"},
}
# State classes each device class allows (Home Assistant's DEVICE_CLASS_STATE_CLASSES).
SENSOR_STATE_CLASSES = {
    "battery": {"measurement"}, "current": {"measurement"},
    "energy": {"total", "total_increasing"}, "power": {"measurement"},
    "temperature": {"measurement"}, "voltage": {"measurement"}, "duration": {"measurement",
                                                                             "total",
                                                                             "total_increasing"},
    "frequency": {"measurement"}, "enum": set(), "timestamp": set(),
}
STATE_CLASSES = {"measurement", "total", "total_increasing", "measurement_angle"}
BINARY_SENSOR_CLASSES = {
    "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door",
    "garage_door", "gas", "heat", "light", "lock", "moisture", "motion", "moving", "occupancy",
    "opening", "plug", "power", "presence", "problem", "running", "safety", "smoke", "sound",
    "tamper", "update", "vibration", "window",
}
SWITCH_CLASSES = {"outlet", "switch"}
ENTITY_CATEGORIES = {"config", "diagnostic"}
ID_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
# After the discovery prefix, as Home Assistant matches it.
TOPIC_RE = re.compile(r"^(?P<component>[a-z_]+)/(?:(?P<node>[^/]+)/)?(?P<object>[^/]+)/config$")


def _expand(obj, table):
    return {table.get(k, k): v for k, v in obj.items()}


def expand(payload):
    """Payload with Home Assistant's abbreviations expanded (keys, device, origin,
    availability entries) and `~` substituted in topics."""
    p = _expand(payload, ABBREVIATIONS)
    base = p.pop("~", None)
    if "device" in p and isinstance(p["device"], dict):
        p["device"] = _expand(p["device"], DEVICE_ABBREVIATIONS)
    if "origin" in p and isinstance(p["origin"], dict):
        p["origin"] = _expand(p["origin"], ORIGIN_ABBREVIATIONS)
    if isinstance(p.get("availability"), list):
        p["availability"] = [_expand(a, ABBREVIATIONS) if isinstance(a, dict) else a
                             for a in p["availability"]]
    if base is not None:
        for k, v in list(p.items()):
            if k.endswith("_topic") and isinstance(v, str):
                if v.startswith("~"):
                    p[k] = base + v[1:]
                elif v.endswith("~"):
                    p[k] = v[:-1] + base
    return p


def _topic_ok(t, wildcards=False):
    if not isinstance(t, str) or not t or len(t.encode()) > 65535 or "\0" in t:
        return False
    return wildcards or ("+" not in t and "#" not in t)


def _check_template(tpl, problems):
    if not isinstance(tpl, str):
        problems.append("value_template is not a string")
        return
    if tpl.count("{{") != tpl.count("}}") or tpl.count("{%") != tpl.count("%}"):
        problems.append("value_template has unbalanced Jinja delimiters: %r" % tpl)


def validate(topic, text, prefix="homeassistant"):
    problems = []
    m = TOPIC_RE.match(topic[len(prefix) + 1:]) if topic.startswith(prefix + "/") else None
    if not m:
        return ["topic %r is not <prefix>/<component>/[<node_id>/]<object_id>/config" % topic]
    component = m.group("component")
    for part in ("node", "object"):
        if m.group(part) is not None and not ID_RE.match(m.group(part)):
            problems.append("%s_id %r has characters outside [a-zA-Z0-9_-]" % (part,
                                                                                m.group(part)))
    if component not in PLATFORM_KEYS:
        return problems + ["component %r is not one this validator knows" % component]
    try:
        raw = json.loads(text)
    except ValueError as e:
        return problems + ["payload is not JSON: %s" % e]
    if not isinstance(raw, dict):
        return problems + ["payload is not a JSON object"]
    p = expand(raw)

    allowed = COMMON_KEYS | PLATFORM_KEYS[component]
    for k in p:
        if k not in allowed:
            problems.append("unknown key %r for %s (after abbreviation expansion)" % (k,
                                                                                       component))
    for k in REQUIRED[component]:
        if k not in p:
            problems.append("required key %r missing for %s" % (k, component))
    for k, v in p.items():
        if k.endswith("_topic") and not _topic_ok(v):
            problems.append("%s %r is not a valid topic without wildcards" % (k, v))
    if "value_template" in p:
        _check_template(p["value_template"], problems)
    if "qos" in p and p["qos"] not in (0, 1, 2):
        problems.append("qos must be 0, 1 or 2")
    if "retain" in p and not isinstance(p["retain"], bool):
        problems.append("retain must be a boolean")
    if "name" in p and p["name"] is not None and not isinstance(p["name"], str):
        problems.append("name must be a string or null")

    # unique_id and device: a device block needs a unique_id and identifiers/connections.
    uid = p.get("unique_id")
    if uid is not None and not isinstance(uid, str):
        problems.append("unique_id must be a string")
    dev = p.get("device")
    if dev is not None:
        if not isinstance(dev, dict):
            problems.append("device must be an object")
        else:
            if uid is None:
                problems.append("a device block needs unique_id")
            for k in dev:
                if k not in DEVICE_ABBREVIATIONS.values():
                    problems.append("unknown device key %r" % k)
            ids = dev.get("identifiers")
            if not ids and not dev.get("connections"):
                problems.append("device needs identifiers or connections")
            if ids is not None and not (isinstance(ids, str) or (
                    isinstance(ids, list) and all(isinstance(i, str) for i in ids))):
                problems.append("device identifiers must be a string or a list of strings")
            for k in ("name", "manufacturer", "model", "sw_version", "hw_version",
                      "serial_number", "via_device"):
                if k in dev and not isinstance(dev[k], str):
                    problems.append("device %s must be a string" % k)
    org = p.get("origin")
    if org is not None:
        if not isinstance(org, dict) or not isinstance(org.get("name"), str):
            problems.append("origin needs a name")
        else:
            for k in org:
                if k not in ORIGIN_ABBREVIATIONS.values():
                    problems.append("unknown origin key %r" % k)

    # Availability.
    if "availability" in p and "availability_topic" in p:
        problems.append("availability and availability_topic are mutually exclusive")
    av = p.get("availability")
    if av is not None:
        if not isinstance(av, list) or not av:
            problems.append("availability must be a non-empty list")
        else:
            for a in av:
                if not isinstance(a, dict) or not _topic_ok(a.get("topic")):
                    problems.append("availability entry needs a topic: %r" % (a,))
                    continue
                for k in a:
                    if k not in ("topic", "payload_available", "payload_not_available",
                                 "value_template"):
                        problems.append("unknown availability key %r" % k)
    if "availability_mode" in p and p["availability_mode"] not in ("all", "any", "latest"):
        problems.append("availability_mode must be all, any or latest")

    cat = p.get("entity_category")
    if cat is not None and cat not in ENTITY_CATEGORIES:
        problems.append("entity_category %r not in %s" % (cat, sorted(ENTITY_CATEGORIES)))
    if component in ("sensor", "binary_sensor") and cat == "config":
        problems.append("%s entities cannot have entity_category config" % component)

    dc = p.get("device_class")
    unit = p.get("unit_of_measurement")
    sc = p.get("state_class")
    if component == "sensor":
        if dc is not None and dc not in SENSOR_UNITS:
            problems.append("sensor device_class %r unknown" % dc)
        elif dc is not None:
            units = SENSOR_UNITS[dc]
            if units == set():
                pass  # enum, timestamp: no unit at all (checked below for enum)
            elif units is not None and unit not in units and not (unit is None and None in units):
                problems.append("unit %r is not valid for device_class %s (allowed: %s)"
                                % (unit, dc, sorted(u for u in units if u)))
        if sc is not None and sc not in STATE_CLASSES:
            problems.append("state_class %r unknown" % sc)
        if dc in SENSOR_STATE_CLASSES and sc is not None and sc not in SENSOR_STATE_CLASSES[dc]:
            problems.append("state_class %s is not allowed with device_class %s" % (sc, dc))
        if dc == "timestamp" and unit is not None:
            problems.append("a timestamp sensor must not have a unit")
        if dc == "enum":
            if sc is not None:
                problems.append("an enum sensor must not have a state_class")
            if unit is not None:
                problems.append("an enum sensor must not have a unit")
            opts = p.get("options")
            if not isinstance(opts, list) or not opts or not all(isinstance(o, str)
                                                                  for o in opts):
                problems.append("an enum sensor needs options, a list of strings")
        elif "options" in p:
            problems.append("options are only allowed with device_class enum")
        if "suggested_display_precision" in p:
            v = p["suggested_display_precision"]
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                problems.append("suggested_display_precision must be an integer >= 0")
        if "expire_after" in p and (not isinstance(p["expire_after"], int) or
                                    p["expire_after"] <= 0):
            problems.append("expire_after must be a positive integer")
    elif component == "binary_sensor":
        if dc is not None and dc not in BINARY_SENSOR_CLASSES:
            problems.append("binary_sensor device_class %r unknown" % dc)
    elif component == "switch":
        if dc is not None and dc not in SWITCH_CLASSES:
            problems.append("switch device_class %r unknown" % dc)
    elif component == "number":
        if dc is not None:
            if dc not in SENSOR_UNITS or dc in ("enum", "timestamp"):
                problems.append("number device_class %r unknown" % dc)
            elif SENSOR_UNITS[dc] is not None and unit not in SENSOR_UNITS[dc]:
                problems.append("unit %r is not valid for number device_class %s" % (unit, dc))
        lo, hi, step = p.get("min", 1), p.get("max", 100), p.get("step", 1)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                   for v in (lo, hi, step)):
            problems.append("number min/max/step must be numbers")
        else:
            if lo >= hi:
                problems.append("number min %s must be below max %s" % (lo, hi))
            if step < 0.001:
                problems.append("number step must be at least 0.001")
        if p.get("mode", "auto") not in ("auto", "box", "slider"):
            problems.append("number mode must be auto, box or slider")
    elif component == "select":
        opts = p.get("options")
        if not isinstance(opts, list) or not opts or not all(isinstance(o, str) for o in opts):
            problems.append("select options must be a non-empty list of strings")
    return problems


def validate_set(messages):
    """Problems across a set of discovery messages {topic: payload text}."""
    problems = []
    seen = {}
    devices = set()
    vias = []
    for topic, text in messages.items():
        if not text:
            continue
        try:
            p = expand(json.loads(text))
        except ValueError:
            continue
        uid = p.get("unique_id")
        if uid in seen:
            problems.append("unique_id %r used by %s and %s" % (uid, seen[uid], topic))
        seen[uid] = topic
        dev = p.get("device") or {}
        ids = dev.get("identifiers") or []
        devices.update([ids] if isinstance(ids, str) else ids)
        if "via_device" in dev:
            vias.append((topic, dev["via_device"]))
    # Retained configs reach Home Assistant in any order; a via_device whose parent device is
    # not registered yet makes 2025.1 and later warn that this will stop working. So no
    # device names another (and one naming a device outside the set is wrong anyway).
    for topic, via in vias:
        problems.append("%s: via_device %r: the order of retained configs is not guaranteed%s"
                        % (topic, via, "" if via in devices else ", and it names no device "
                           "in the set"))
    return problems


_REF = re.compile(r"value_json((?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])+)")


def template_refs(template):
    """The value_json paths a template reads, as lists of keys/indexes."""
    out = []
    for m in _REF.finditer(template or ""):
        path = []
        for part in re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]", m.group(1)):
            path.append(part[0] if part[0] else int(part[1]))
        out.append(path)
    return out


def resolve(obj, path):
    """Follows a template path in a decoded state payload; raises KeyError/IndexError."""
    for p in path:
        obj = obj[p]
    return obj
