package ai.alc;

/** Receives generated text as it is produced, on the thread that called generate. */
@FunctionalInterface
public interface GenerateListener {
    /** One piece of text (whole UTF-8 characters). Return false to cancel. */
    boolean onToken(String token);
}
