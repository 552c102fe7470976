// A counter (written for ftdist's code recipe tests).
public class Counter {
    private int count = 0;

    /**
     * Adds one to the count and returns the new value.
     */
    public int increment() {
        count += 1;
        return count;
    }

    // Sets the count back to zero.
    public void reset() {
        count = 0;
    }

    public int get() {
        return count;
    }

    /** Returns the count as text, e.g. "count=3". */
    public String describe() {
        String braces = "{not a block}";
        return "count=" + count;
    }
}
