// Produces one record per key with the Java client's default partitioner and prints "key<TAB>partition".
// Run as a single-file source program: java -cp "<kafka libs>/*" ProduceKeys.java BOOTSTRAP TOPIC KEY...
import java.util.Properties;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.StringSerializer;

public class ProduceKeys {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        props.put("key.serializer", StringSerializer.class.getName());
        props.put("value.serializer", StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            for (int i = 2; i < args.length; i++) {
                RecordMetadata md = producer.send(new ProducerRecord<>(args[1], args[i], "java")).get();
                System.out.println(args[i] + "\t" + md.partition());
            }
        }
    }
}
