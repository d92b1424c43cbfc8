package ai.alc;

/** An alc call failed; {@link #status} is the C API's alc_status code. */
public class AlcException extends RuntimeException {
    public static final int INVALID_ARGUMENT = -1;
    public static final int INVALID_HANDLE = -2;
    public static final int NOT_FOUND = -3;
    public static final int BAD_MODEL = -4;
    public static final int UNSUPPORTED = -5;
    public static final int BUSY = -6;
    public static final int CANCELLED = -7;
    public static final int TIMEOUT = -8;
    public static final int CONTEXT_FULL = -9;
    public static final int BUFFER_TOO_SMALL = -10;
    public static final int IO = -11;
    public static final int BAD_KEY = -12;
    public static final int INTERNAL = -100;

    private static final long serialVersionUID = 1L;

    public final int status;

    public AlcException(int status, String message) {
        super(message);
        this.status = status;
    }
}
