package ai.alc;

/**
 * A conversation with its own KV cache. One generation at a time (a second concurrent
 * generate throws AlcException with status BUSY); different sessions may be used from
 * different threads (their work is queued on the model's engine thread).
 */
public final class Session implements AutoCloseable {
    /** Stop reasons (the C API's alc_stop). */
    public static final int STOP_END_OF_GENERATION = 0;
    public static final int STOP_STOP_STRING = 1;
    public static final int STOP_MAX_TOKENS = 2;
    public static final int STOP_CONTEXT_FULL = 3;
    public static final int STOP_CANCELLED = 4;

    private volatile long handle;
    /** Why the last generate on this session ended (written by the native code). */
    private volatile int lastStopReason = -1;

    Session(long handle) {
        this.handle = handle;
    }

    /**
     * Generate from a raw-text prompt; listener (may be null) gets each piece of text.
     * temperature 0 = greedy; maxTokens 0 = no limit. Returns the whole text (the part
     * produced before a cancel, if cancelled).
     */
    public String generate(String prompt, int maxTokens, float temperature, GenerateListener listener) {
        return nativeGenerate(handle, prompt, maxTokens, temperature, 0x5eedL, false, listener);
    }

    /** As generate, with the seed given and optionally the model's chat template. */
    public String generate(String prompt, int maxTokens, float temperature, long seed, boolean chat,
            GenerateListener listener) {
        return nativeGenerate(handle, prompt, maxTokens, temperature, seed, chat, listener);
    }

    /** Cancel the running generation (from any thread); it stops after its current step. */
    public void cancel() {
        nativeCancel(handle);
    }

    /** STOP_* code of the last finished generate. */
    public int lastStopReason() {
        return lastStopReason;
    }

    @Override
    public synchronized void close() {
        if (handle != 0) {
            long h = handle;
            handle = 0;
            nativeFree(h);
        }
    }

    private native String nativeGenerate(long session, String prompt, int maxTokens, float temperature,
            long seed, boolean chat, GenerateListener listener);
    private static native void nativeCancel(long session);
    private static native void nativeFree(long session);
}
