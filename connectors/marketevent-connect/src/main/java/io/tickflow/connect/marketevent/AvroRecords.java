package io.tickflow.connect.marketevent;

import java.nio.ByteBuffer;
import java.util.Date;
import java.util.function.Function;

import org.apache.avro.LogicalType;
import org.apache.avro.LogicalTypes;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.errors.DataException;

/**
 * Builds an Avro record of a given (registered) schema from a Connect {@link Struct}, field by field name.
 *
 * <p>Why not a generic Connect-to-Avro mapping: Connect has no enums and only millisecond timestamps, so the
 * schema derived from a Struct never equals the registered one. Here the registered schema decides: a string
 * becomes an {@link GenericData.EnumSymbol} when the schema says enum (also inside a {@code ["null", enum]}
 * union), an int64 is written as it is into a {@code timestamp-micros} long. A schema field the Struct lacks
 * takes its default (a later schema version with an added optional field still works); a Struct field the
 * schema lacks must be null, or it would be lost silently. Such a field usually means the registered schema is
 * older than the Struct's (a MarketEvent v2 cancel while {@code md.events-value} is still v1), which only the
 * caller can say, so the caller builds that exception; a null one says nothing and is fine (a v1 registration
 * keeps working for trade prints).
 */
final class AvroRecords {

    private AvroRecords() {
    }

    /**
     * @param unknownField the exception for a field that is set in the Struct but not in {@code schema}, given
     *                     the field's name
     */
    static GenericData.Record toRecord(Struct struct, Schema schema, Function<String, DataException> unknownField) {
        if (schema.getType() != Schema.Type.RECORD) {
            throw new DataException("registered schema " + schema.getFullName() + " is a " + schema.getType()
                    + ", expected a record");
        }
        GenericData.Record record = new GenericData.Record(schema);
        for (Schema.Field field : schema.getFields()) {
            Field connectField = struct.schema().field(field.name());
            if (connectField == null) {
                if (!field.hasDefaultValue()) {
                    throw new DataException("the record has no field " + field.name() + ", which "
                            + schema.getFullName() + " requires (it has no default)");
                }
                record.put(field.pos(), GenericData.get().getDefaultValue(field));
            } else {
                record.put(field.pos(), convert(field.schema(), struct.get(connectField), field.name(), unknownField));
            }
        }
        for (Field connectField : struct.schema().fields()) {
            if (schema.getField(connectField.name()) == null && struct.get(connectField) != null) {
                throw unknownField.apply(connectField.name());
            }
        }
        return record;
    }

    private static Object convert(Schema schema, Object value, String path,
                                  Function<String, DataException> unknownField) {
        if (value == null) {
            if (schema.getType() == Schema.Type.NULL
                    || (schema.getType() == Schema.Type.UNION && schema.getTypes().stream().anyMatch(
                            s -> s.getType() == Schema.Type.NULL))) {
                return null;
            }
            throw new DataException("field " + path + " is null, but the registered schema requires a "
                    + schema.getType().getName());
        }
        switch (schema.getType()) {
            case UNION:
                return union(schema, value, path, unknownField);
            case STRING:
                if (value instanceof CharSequence s) {
                    return s.toString();
                }
                break;
            case ENUM:
                if (value instanceof CharSequence s) {
                    if (schema.hasEnumSymbol(s.toString())) {
                        return new GenericData.EnumSymbol(schema, s.toString());
                    }
                    throw new DataException("field " + path + " is '" + s + "', which is not a symbol of "
                            + schema.getFullName() + " " + schema.getEnumSymbols());
                }
                break;
            case LONG:
                if (value instanceof Long || value instanceof Integer || value instanceof Short || value instanceof Byte) {
                    return ((Number) value).longValue();
                }
                if (value instanceof Date d) {
                    return dateAsLong(schema, d, path);
                }
                break;
            case INT:
                if (value instanceof Integer || value instanceof Short || value instanceof Byte) {
                    return ((Number) value).intValue();
                }
                break;
            case DOUBLE:
                if (value instanceof Double || value instanceof Float) {
                    return ((Number) value).doubleValue();
                }
                break;
            case FLOAT:
                if (value instanceof Float f) {
                    return f;
                }
                break;
            case BOOLEAN:
                if (value instanceof Boolean b) {
                    return b;
                }
                break;
            case BYTES:
                if (value instanceof byte[] bytes) {
                    return ByteBuffer.wrap(bytes);
                }
                if (value instanceof ByteBuffer buffer) {
                    return buffer;
                }
                break;
            case RECORD:
                if (value instanceof Struct nested) {
                    return toRecord(nested, schema, unknownField);
                }
                break;
            default:
                throw new DataException("field " + path + " has Avro type " + schema.getType()
                        + ", which this converter does not write");
        }
        throw new DataException("field " + path + " holds a " + value.getClass().getSimpleName()
                + ", which does not fit the registered type " + schema);
    }

    /** The first non-null branch the value fits, in the union's order. */
    private static Object union(Schema union, Object value, String path, Function<String, DataException> unknownField) {
        DataException last = null;
        for (Schema branch : union.getTypes()) {
            if (branch.getType() == Schema.Type.NULL) {
                continue;
            }
            try {
                return convert(branch, value, path, unknownField);
            } catch (DataException e) {
                last = e;
            }
        }
        throw last != null ? last : new DataException("field " + path + " fits no branch of " + union);
    }

    private static long dateAsLong(Schema schema, Date date, String path) {
        LogicalType type = schema.getLogicalType();
        if (type instanceof LogicalTypes.TimestampMicros) {
            return Math.multiplyExact(date.getTime(), 1_000L);
        }
        if (type instanceof LogicalTypes.TimestampMillis) {
            return date.getTime();
        }
        throw new DataException("field " + path + " holds a timestamp, but the registered long has no timestamp logical type");
    }
}
