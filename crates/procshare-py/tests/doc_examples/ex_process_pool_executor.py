# library/concurrent.futures.rst, "ProcessPoolExecutor Example", with the mp_context argument
# (library/concurrent.futures.rst: "mp_context can be a multiprocessing context"). The primes
# are smaller than the docs' (the docs' take seconds each in pure Python).
import concurrent.futures
import math
import multiprocessing

PRIMES = [
    1000003,
    1000033,
    1000037,
    1000039,
    1000081,
    1000099 * 3]

def is_prime(n):
    if n < 2:
        return False
    if n == 2:
        return True
    if n % 2 == 0:
        return False

    sqrt_n = int(math.floor(math.sqrt(n)))
    for i in range(3, sqrt_n + 1, 2):
        if n % i == 0:
            return False
    return True

def main():
    for method in ('fork', 'spawn', 'forkserver'):
        ctx = multiprocessing.get_context(method)
        with concurrent.futures.ProcessPoolExecutor(mp_context=ctx) as executor:
            for number, prime in zip(PRIMES, executor.map(is_prime, PRIMES)):
                print('%s: %d is prime: %s' % (method, number, prime))

if __name__ == '__main__':
    main()
