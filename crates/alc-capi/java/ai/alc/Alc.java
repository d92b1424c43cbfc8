package ai.alc;

/**
 * A loaded model: a language model (make {@link Session}s) or an embedding package
 * ({@link #embed}). Close it when done; sessions made from it stay usable until closed.
 * The native library is libalc_capi (System.loadLibrary("alc_capi")), or the absolute
 * path in the system property "alc.library".
 */
public final class Alc implements AutoCloseable {
    static {
        String lib = System.getProperty("alc.library");
        if (lib != null) {
            System.load(lib);
        } else {
            System.loadLibrary("alc_capi");
        }
    }

    private long handle;

    private Alc(long handle) {
        this.handle = handle;
    }

    /** Load a GGUF model. threads/ctx: 0 = default. */
    public static Alc open(String path, int threads, int ctx) {
        return new Alc(nativeOpen(path, threads, ctx));
    }

    /** Load a GGUF image held in memory (copied). */
    public static Alc openBuffer(byte[] gguf, int threads, int ctx) {
        return new Alc(nativeOpenBuffer(gguf, threads, ctx));
    }

    /** Load a sealed package (.ava3); key: hex or base64 of 32 bytes, null = environment. */
    public static Alc openSealed(String path, String key, int threads, int ctx) {
        return new Alc(nativeOpenSealed(path, key, threads, ctx));
    }

    public static String version() {
        return nativeVersion();
    }

    /** Live native handles {models, sessions, streams} in this process. */
    public static int[] liveHandles() {
        return nativeLiveHandles();
    }

    /** A new session (own KV cache) on this language model. */
    public Session newSession() {
        return new Session(nativeSessionNew(handle));
    }

    /** Embeddings, one row per text (embedding packages only). */
    public float[][] embed(String[] texts) {
        float[] flat = nativeEmbed(handle, texts);
        int dim = texts.length == 0 ? 0 : flat.length / texts.length;
        float[][] out = new float[texts.length][];
        for (int i = 0; i < texts.length; i++) {
            out[i] = java.util.Arrays.copyOfRange(flat, i * dim, (i + 1) * dim);
        }
        return out;
    }

    public int embedDim() {
        return nativeEmbedDim(handle);
    }

    /** The raw handle (for diagnostics). */
    public long handle() {
        return handle;
    }

    @Override
    public synchronized void close() {
        if (handle != 0) {
            long h = handle;
            handle = 0;
            nativeFree(h);
        }
    }

    private static native String nativeVersion();
    private static native long nativeOpen(String path, int threads, int ctx);
    private static native long nativeOpenBuffer(byte[] gguf, int threads, int ctx);
    private static native long nativeOpenSealed(String path, String key, int threads, int ctx);
    static native void nativeFree(long model);
    private static native long nativeSessionNew(long model);
    private static native float[] nativeEmbed(long model, String[] texts);
    private static native int nativeEmbedDim(long model);
    private static native int[] nativeLiveHandles();
}
