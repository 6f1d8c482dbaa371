package io.tickflow.connect.hbase;

import org.apache.kafka.connect.errors.DataException;

/**
 * A record that can never be written, whatever is retried: bad framing, unknown schema id,
 * undecodable body, or content that breaks the HBase layout. Such records go to the errant
 * record reporter (the dead letter queue) instead of stopping the task.
 */
public class RecordRejectedException extends DataException {

    private static final long serialVersionUID = 1L;

    public RecordRejectedException(String message) {
        super(message);
    }

    public RecordRejectedException(String message, Throwable cause) {
        super(message, cause);
    }
}
